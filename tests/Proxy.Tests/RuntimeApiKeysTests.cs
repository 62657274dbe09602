using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Dapper;
using Npgsql;
using QuotaProxy.Cli;
using QuotaProxy.Testing;

namespace QuotaProxy.Tests;

/// <summary>
/// API keys issued through the admin API: shown once, kept as digests, identifying their tenant on every
/// replica within a second, revocable the same way, expiring by themselves, audited; the configured keys
/// keep working beside them.
/// </summary>
[Collection(LedgerCollection.Name)]
public sealed class RuntimeApiKeysTests(RedisFixture redis, PostgresFixture postgres)
{
    private const string AdminKey = "keys-admin-key";

    private TestProxyConfig Config(VendorServer vendor, string prefix, string? ledger = null)
    {
        var config = new TestProxyConfig(vendor.Url)
            .Pool("daily", 100, "1d", "UTC", ("prod", null), ("test", null))
            .Route("quotes", pool: "daily", cost: 1)
            .ApiKey("configured-prod-key", "prod")
            .Redis(redis.ConnectionString, prefix, timeout: TimeSpan.FromSeconds(2))
            .Admin(LoopbackPorts.Free(), AdminKey);
        return ledger is null ? config : config.Set("Quota:Ledger:ConnectionString", ledger);
    }

    private static async Task<HttpResponseMessage> AdminAsync(ProxyInstance proxy, HttpMethod method, string path, object? body = null)
    {
        using var message = new HttpRequestMessage(method, path);
        message.Headers.Add("X-Admin-Key", AdminKey);
        if (body is not null)
        {
            message.Content = JsonContent.Create(body);
        }

        return await proxy.Admin!.SendAsync(message);
    }

    private static async Task<HttpStatusCode> CallAsync(ProxyInstance proxy, string key)
    {
        using var response = await proxy.GetAsync(key, "/quotes/x");
        return response.StatusCode;
    }

    private static async Task<JsonElement> JsonAsync(HttpResponseMessage response) => JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;

    [Fact]
    public async Task AKeyIssuedOnOneReplica_WorksOnTheOtherWithinASecond_IsListedWithoutItsSecret_AndItsRevocationTooIsEverywhereWithinASecond()
    {
        using var vendor = new VendorServer();
        var prefix = RedisFixture.NewKeyPrefix();
        var ledger = await postgres.NewDatabaseAsync();
        await using var first = await ProxyInstance.StartAsync(Config(vendor, prefix, ledger));
        await using var second = await ProxyInstance.StartAsync(Config(vendor, prefix, ledger));

        using var created = await AdminAsync(first, HttpMethod.Post, "/admin/v1/keys", new { tenant = "test", name = "ci runner" });
        var issued = await JsonAsync(created);
        var key = issued.GetProperty("key").GetString()!;
        var onFirst = await CallAsync(first, key);
        var watch = Stopwatch.StartNew();
        var onSecond = await Poll.UntilAsync("the other replica to honour the new key", () => CallAsync(second, key), status => status == HttpStatusCode.OK, TimeSpan.FromSeconds(1));
        var honouredAfter = watch.Elapsed;
        using var listed = await AdminAsync(second, HttpMethod.Get, "/admin/v1/keys");
        var listText = await listed.Content.ReadAsStringAsync();
        using var revoked = await AdminAsync(second, HttpMethod.Delete, $"/admin/v1/keys/{issued.GetProperty("id").GetString()}");
        watch.Restart();
        var refusedOnFirst = await Poll.UntilAsync("the other replica to refuse the revoked key", () => CallAsync(first, key), status => status == HttpStatusCode.Unauthorized, TimeSpan.FromSeconds(1));
        var refusedAfter = watch.Elapsed;
        using var revokedAgain = await AdminAsync(first, HttpMethod.Delete, $"/admin/v1/keys/{issued.GetProperty("id").GetString()}");

        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.StartsWith("qp_", key);
        Assert.Equal(46, key.Length); // qp_ and 32 random bytes, base64url: 256 bits
        Assert.Equal(("test", "ci runner"), (issued.GetProperty("tenant").GetString(), issued.GetProperty("name").GetString()));
        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.OK), (onFirst, onSecond));
        Assert.True(honouredAfter < TimeSpan.FromSeconds(1), $"honoured after {honouredAfter}");
        var entry = JsonDocument.Parse(listText).RootElement.GetProperty("keys").EnumerateArray().Single();
        Assert.Equal((issued.GetProperty("id").GetString(), "test", false), (entry.GetProperty("id").GetString(), entry.GetProperty("tenant").GetString(), entry.GetProperty("expired").GetBoolean()));
        Assert.DoesNotContain(key, listText);
        Assert.DoesNotContain(Enforcement.Identity.ApiKeyHash.Compute(key), listText);
        Assert.Equal(HttpStatusCode.NoContent, revoked.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, refusedOnFirst);
        Assert.True(refusedAfter < TimeSpan.FromSeconds(1), $"refused after {refusedAfter}");
        Assert.Equal(HttpStatusCode.NotFound, revokedAgain.StatusCode);
        // The configured key works throughout; both changes are in the audit trail, without the key.
        Assert.Equal(HttpStatusCode.OK, await CallAsync(second, "configured-prod-key"));
        await using var connection = new NpgsqlConnection(ledger);
        var audited = (await connection.QueryAsync<(string Action, string Tenant, string After)>("SELECT action, tenant, new::text FROM admin_audit ORDER BY id")).ToList();
        Assert.Equal(["key-create", "key-revoke"], audited.Select(a => a.Action));
        Assert.All(audited, a => Assert.Equal("test", a.Tenant));
        Assert.DoesNotContain(audited, a => a.After.Contains(key, StringComparison.Ordinal));
    }

    [Fact]
    public async Task AKeyPastItsExpiry_IdentifiesNobody_AndBadRequestsAreRefusedWithEveryReason()
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor, RedisFixture.NewKeyPrefix()));

        using var shortLived = await AdminAsync(proxy, HttpMethod.Post, "/admin/v1/keys", new { tenant = "prod", expiresAt = DateTimeOffset.UtcNow.AddSeconds(2) });
        var key = (await JsonAsync(shortLived)).GetProperty("key").GetString()!;
        var before = await CallAsync(proxy, key);
        await Task.Delay(TimeSpan.FromSeconds(2.5));
        var after = await CallAsync(proxy, key);
        using var listed = await AdminAsync(proxy, HttpMethod.Get, "/admin/v1/keys");
        using var invalid = await AdminAsync(proxy, HttpMethod.Post, "/admin/v1/keys", new { tenant = "nobody", name = "", expiresAt = DateTimeOffset.UtcNow.AddDays(-1) });

        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.Unauthorized), (before, after));
        Assert.True((await JsonAsync(listed)).GetProperty("keys")[0].GetProperty("expired").GetBoolean());
        Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);
        Assert.Equal("application/problem+json", invalid.Content.Headers.ContentType!.MediaType);
        var errors = (await JsonAsync(invalid)).GetProperty("errors").EnumerateArray().Select(e => e.GetString()).ToList();
        Assert.Equal(3, errors.Count);
        Assert.Contains("tenant 'nobody' is no tenant of any pool.", errors);
    }

    [Fact]
    public async Task Quotactl_CreatesListsAndRevokesKeys()
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor, RedisFixture.NewKeyPrefix()));
        string[] admin = ["--url", proxy.AdminAddress!.ToString(), "--key", AdminKey];

        var created = await RunAsync(["keys", "create", "--tenant", "prod", "--name", "nightly", .. admin]);
        var key = created.Output.Split('\n')[0];
        var used = await CallAsync(proxy, key);
        var listed = await RunAsync(["keys", "list", .. admin]);
        var id = listed.Output.Split('\n')[1].Split(' ')[0];
        var revoked = await RunAsync(["keys", "revoke", "--id", id, .. admin]);
        var refused = await CallAsync(proxy, key);

        Assert.Equal(0, created.Code);
        Assert.StartsWith("qp_", key);
        Assert.Contains("the key above is shown this once", created.Output);
        Assert.Equal(HttpStatusCode.OK, used);
        Assert.Equal(0, listed.Code);
        Assert.Matches(@"^ID +TENANT +NAME +CREATED +EXPIRES +LAST USED\n" + id + @" +prod +nightly ", listed.Output);
        Assert.DoesNotContain(key, listed.Output);
        Assert.Equal((0, $"{id}: revoked; every replica refuses it within a second\n"), (revoked.Code, revoked.Output));
        Assert.Equal(HttpStatusCode.Unauthorized, refused);
    }

    [Fact]
    public async Task QuotactlAudit_ShowsWhoIssuedAndRevokedAKey_NeverTheKey()
    {
        using var vendor = new VendorServer();
        var ledger = await postgres.NewDatabaseAsync();
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor, RedisFixture.NewKeyPrefix(), ledger));
        string[] admin = ["--url", proxy.AdminAddress!.ToString(), "--key", AdminKey];

        var created = await RunAsync(["keys", "create", "--tenant", "test", "--name", "audit-me", "--json", .. admin]);
        Assert.True(created.Code == 0, created.Error);
        var issued = JsonDocument.Parse(created.Output).RootElement;
        await RunAsync(["keys", "revoke", "--id", issued.GetProperty("id").GetString()!, .. admin]);
        var audit = await RunAsync(["audit", "--limit", "5", .. admin]);

        Assert.Equal(0, audit.Code);
        var lines = audit.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("AT (UTC)", lines[0]);
        Assert.Matches(@" ops +key-revoke +test ", lines[1]);
        Assert.Matches(@" ops +key-create +test .*audit-me", lines[2]);
        Assert.DoesNotContain(issued.GetProperty("key").GetString()!, audit.Output);
    }

    private static async Task<(int Code, string Output, string Error)> RunAsync(string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var code = await Quotactl.RunAsync(args, output, error);
        return (code, output.ToString(), error.ToString());
    }
}
