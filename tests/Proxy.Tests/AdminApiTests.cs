using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Dapper;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using QuotaProxy.Enforcement.Admin;
using QuotaProxy.Testing;

namespace QuotaProxy.Tests;

/// <summary>The admin API on its own port: the key, status, overrides across replicas and restarts, resets, usage, the audit trail, OpenAPI.</summary>
[Collection(LedgerCollection.Name)]
public sealed class AdminApiTests(RedisFixture redis, PostgresFixture postgres)
{
    private const string AdminKey = "admin-test-key";

    private static TestProxyConfig Config(VendorServer vendor, int adminPort) => new TestProxyConfig(vendor.Url)
        .Pool("daily", 250, "1d", "UTC", ("prod", 225), ("e2e", 2))
        .Route("quotes", pool: "daily", cost: 1)
        .ApiKey("prod-key", "prod")
        .ApiKey("e2e-key", "e2e")
        .Admin(adminPort, AdminKey);

    private static async Task<HttpResponseMessage> AdminAsync(ProxyInstance proxy, HttpMethod method, string path, object? body = null, string? key = AdminKey)
    {
        using var message = new HttpRequestMessage(method, path);
        if (key is not null)
        {
            message.Headers.Add("X-Admin-Key", key);
        }

        if (body is not null)
        {
            message.Content = JsonContent.Create(body);
        }

        return await proxy.Admin!.SendAsync(message);
    }

    private static async Task<JsonElement> JsonAsync(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        return text.Length > 0 ? JsonDocument.Parse(text).RootElement : throw new InvalidOperationException($"{(int)response.StatusCode} {response.RequestMessage?.Method} {response.RequestMessage?.RequestUri}: empty body");
    }

    private static JsonElement Tenant(JsonElement status, string tenant) =>
        status.GetProperty("tenants").EnumerateArray().Single(t => t.GetProperty("tenant").GetString() == tenant);

    public static TheoryData<string, string> Endpoints() => new()
    {
        { "GET", "/admin/v1/status" },
        { "PUT", "/admin/v1/pools/daily/overrides/e2e" },
        { "DELETE", "/admin/v1/pools/daily/overrides/e2e" },
        { "POST", "/admin/v1/pools/daily/reset" },
        { "GET", "/admin/v1/usage?from=2030-01-01&to=2030-01-02" },
        { "GET", "/admin/v1/audit" },
        { "GET", "/admin/v1/openapi.json" },
        { "GET", "/admin/v1/keys" },
        { "POST", "/admin/v1/keys" },
        { "DELETE", "/admin/v1/keys/key_0000000000000000" },
    };

    [Theory]
    [MemberData(nameof(Endpoints))]
    public async Task EveryEndpoint_WithoutTheAdminKeyOrWithAWrongOne_Is401_AndOnTheProxyPortIsNotThere(string method, string path)
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor, LoopbackPorts.Free()));
        var body = method is "PUT" ? new { limit = 3 } : null;

        using var none = await AdminAsync(proxy, new HttpMethod(method), path, body, key: null);
        using var wrong = await AdminAsync(proxy, new HttpMethod(method), path, body, key: "not-the-key");
        using var proxyPort = new HttpRequestMessage(new HttpMethod(method), path);
        proxyPort.Headers.Add("X-Admin-Key", AdminKey);
        using var onProxyPort = await proxy.Client.SendAsync(proxyPort);
        using var withKey = await AdminAsync(proxy, new HttpMethod(method), path, body);

        Assert.Equal((HttpStatusCode.Unauthorized, HttpStatusCode.Unauthorized), (none.StatusCode, wrong.StatusCode));
        Assert.Equal("application/problem+json", none.Content.Headers.ContentType!.MediaType);
        Assert.Equal("urn:quotaproxy:problem:admin-unauthorized", (await JsonAsync(none)).GetProperty("type").GetString());
        Assert.Equal(HttpStatusCode.NotFound, onProxyPort.StatusCode);
        Assert.NotEqual(HttpStatusCode.Unauthorized, withKey.StatusCode);
        Assert.Empty(vendor.Calls);
    }

    [Fact]
    public async Task Status_ShowsEachTenantsLimitAllocationUsedAndAvailable_AndWhenTheWindowResets()
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor, LoopbackPorts.Free()).Set("Quota:Pools:daily:Tenants:prod:Allocation", "200").Set("Quota:Pools:daily:Tenants:prod:Guaranteed", "100"));
        (await proxy.GetAsync("e2e-key", "/quotes/x")).Dispose();

        using var all = await AdminAsync(proxy, HttpMethod.Get, "/admin/v1/status");
        using var one = await AdminAsync(proxy, HttpMethod.Get, "/admin/v1/status?pool=daily&tenant=e2e");
        using var unknown = await AdminAsync(proxy, HttpMethod.Get, "/admin/v1/status?pool=daily&tenant=nobody");

        Assert.Equal(HttpStatusCode.OK, all.StatusCode);
        var pool = (await JsonAsync(all)).GetProperty("pools").EnumerateArray().Single();
        Assert.Equal(("daily", 250, 1, "1d"), (pool.GetProperty("pool").GetString(), pool.GetProperty("limit").GetInt64(), pool.GetProperty("used").GetInt64(), pool.GetProperty("window").GetString()));
        // The window the counters are in ends at a UTC midnight, the first one after they were read.
        var windowEnd = pool.GetProperty("windowEnd").GetDateTimeOffset();
        var answeredAt = all.Headers.Date!.Value;
        Assert.Equal(TimeSpan.Zero, windowEnd.TimeOfDay);
        Assert.InRange(windowEnd - answeredAt, TimeSpan.Zero, TimeSpan.FromDays(1));
        var e2e = Tenant(pool, "e2e");
        Assert.Equal((2L, 1L, 1L, 0L), (e2e.GetProperty("limit").GetInt64(), e2e.GetProperty("used").GetInt64(), e2e.GetProperty("available").GetInt64(), e2e.GetProperty("guaranteed").GetInt64()));
        // prod holds a guarantee of 100 that e2e may not touch: the pool has 249 left, of which prod could take 225.
        Assert.Equal((100L, 225L), (Tenant(pool, "prod").GetProperty("guaranteed").GetInt64(), Tenant(pool, "prod").GetProperty("available").GetInt64()));
        Assert.Single((await JsonAsync(one)).GetProperty("pools")[0].GetProperty("tenants").EnumerateArray());
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal("urn:quotaproxy:problem:admin-unknown-tenant", (await JsonAsync(unknown)).GetProperty("type").GetString());
    }

    [Fact]
    public async Task Grant_WithExpiresAt_IsInForceInEveryReplica_ThenEndsByItselfInEach_AndItsEndIsAuditedOnce()
    {
        using var vendor = new VendorServer();
        var prefix = RedisFixture.NewKeyPrefix();
        var ledger = await postgres.NewDatabaseAsync();
        ProxyInstance[] replicas =
        [
            await ProxyInstance.StartAsync(Config(vendor, LoopbackPorts.Free()).Redis(redis.ConnectionString, prefix).Set("Quota:Ledger:ConnectionString", ledger)),
            await ProxyInstance.StartAsync(Config(vendor, LoopbackPorts.Free()).Redis(redis.ConnectionString, prefix).Set("Quota:Ledger:ConnectionString", ledger)),
        ];
        try
        {
            using var past = await AdminAsync(replicas[0], HttpMethod.Put, "/admin/v1/pools/daily/overrides/e2e", new { limit = 5, expiresAt = DateTimeOffset.UtcNow.AddMinutes(-1) });
            var expiresAt = DateTimeOffset.UtcNow.AddSeconds(3);
            using var granted = await AdminAsync(replicas[0], HttpMethod.Put, "/admin/v1/pools/daily/overrides/e2e", new { limit = 5, expiresAt });
            // e2e's own limit is 2: a third and fourth call get through only under the grant, one through each replica.
            var during = new[] { await replicas[0].StatusAsync("e2e-key", "/quotes/x"), await replicas[1].StatusAsync("e2e-key", "/quotes/x"), await replicas[0].StatusAsync("e2e-key", "/quotes/x"), await replicas[1].StatusAsync("e2e-key", "/quotes/x") };
            var overrideDuring = Tenant((await JsonAsync(await AdminAsync(replicas[1], HttpMethod.Get, "/admin/v1/status?pool=daily"))).GetProperty("pools")[0], "e2e").GetProperty("override");

            // Then, without anyone asking, each replica is back at the configured limit.
            var limits = await Poll.UntilAsync(
                "both replicas back at e2e's configured limit",
                async () => await Task.WhenAll(replicas.Select(async r => Tenant((await JsonAsync(await AdminAsync(r, HttpMethod.Get, "/admin/v1/status?pool=daily"))).GetProperty("pools")[0], "e2e").GetProperty("limit").GetInt64())),
                seen => seen.All(limit => limit == 2),
                TimeSpan.FromSeconds(10));
            var endedAfter = DateTimeOffset.UtcNow - expiresAt;
            var after = new[] { await replicas[0].StatusAsync("e2e-key", "/quotes/x"), await replicas[1].StatusAsync("e2e-key", "/quotes/x") };

            Assert.Equal(HttpStatusCode.BadRequest, past.StatusCode);
            Assert.Equal("urn:quotaproxy:problem:admin-bad-expiry", (await JsonAsync(past)).GetProperty("type").GetString());
            Assert.Equal(HttpStatusCode.OK, granted.StatusCode);
            Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK], during);
            Assert.Equal((5, expiresAt.ToUnixTimeMilliseconds()), (overrideDuring.GetProperty("limit").GetInt64(), overrideDuring.GetProperty("expiresAt").GetDateTimeOffset().ToUnixTimeMilliseconds()));
            Assert.Equal([2L, 2L], limits);
            Assert.True(endedAfter < TimeSpan.FromSeconds(2), $"the grant ended {endedAfter.TotalSeconds:0.00} s after its time");
            Assert.Equal([HttpStatusCode.TooManyRequests, HttpStatusCode.TooManyRequests], after);
            // Audited when granted, and once (not once per replica) when it ended; the store no longer holds it.
            var audit = await Poll.UntilAsync(
                "the grant's end in the audit trail",
                async () =>
                {
                    await using var connection = new NpgsqlConnection(ledger);
                    return (await connection.QueryAsync<(string Actor, string Action, string Old, string New)>("SELECT actor, action, old::text, new::text FROM admin_audit ORDER BY id")).ToList();
                },
                rows => rows.Count >= 2,
                TimeSpan.FromSeconds(10));
            await Task.Delay(OverrideExpiry.Tick * 4);
            await using (var connection = new NpgsqlConnection(ledger))
            {
                Assert.Equal(2, await connection.ExecuteScalarAsync<int>("SELECT count(*) FROM admin_audit"));
            }

            Assert.Equal([("ops", "override"), ("expiry", "override-expired")], audit.Select(row => (row.Actor, row.Action)));
            Assert.Equal(expiresAt.ToUnixTimeMilliseconds(), JsonDocument.Parse(audit[0].New).RootElement.GetProperty("expiresAt").GetDateTimeOffset().ToUnixTimeMilliseconds());
            Assert.Equal((5, 2), (JsonDocument.Parse(audit[1].Old).RootElement.GetProperty("limit").GetInt64(), JsonDocument.Parse(audit[1].New).RootElement.GetProperty("limit").GetInt64()));
            Assert.False(await redis.Connection.GetDatabase().HashExistsAsync($"{prefix}admin:overrides", "daily/e2e"));
        }
        finally
        {
            foreach (var replica in replicas)
            {
                await replica.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task Override_RaisesALimitInEveryReplicaAtOnce_IsAudited_AndOutlivesARestart()
    {
        using var vendor = new VendorServer();
        var prefix = RedisFixture.NewKeyPrefix();
        var ledger = await postgres.NewDatabaseAsync();
        var config = Config(vendor, LoopbackPorts.Free())
            .Redis(redis.ConnectionString, prefix, timeout: TimeSpan.FromSeconds(2))
            .Set("Quota:Ledger:ConnectionString", ledger)
            .Set("Quota:Ledger:PollInterval", "00:00:00.050");
        var other = Config(vendor, LoopbackPorts.Free())
            .Redis(redis.ConnectionString, prefix, timeout: TimeSpan.FromSeconds(2))
            .Set("Quota:Ledger:ConnectionString", ledger);
        await using var admin = await ProxyInstance.StartAsync(config);
        await using var serving = await ProxyInstance.StartAsync(other);
        var before = await serving.SendAsync("e2e-key", 3, "/quotes/x");

        using var invalid = await AdminAsync(admin, HttpMethod.Put, "/admin/v1/pools/daily/overrides/e2e", new { limit = 300 });
        using var changed = await AdminAsync(admin, HttpMethod.Put, "/admin/v1/pools/daily/overrides/e2e", new { limit = 5 });
        // The other replica hears of it through Redis; "at once" here means well inside a second.
        var watch = System.Diagnostics.Stopwatch.StartNew();
        HttpStatusCode next;
        var answers = new List<string>();
        do
        {
            using var response = await serving.GetAsync("e2e-key", "/quotes/x");
            next = response.StatusCode;
            answers.Add($"{watch.ElapsedMilliseconds} ms: {(int)next} {await response.Content.ReadAsStringAsync()}");
        }
        while (next != HttpStatusCode.OK && watch.Elapsed < TimeSpan.FromSeconds(5));

        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests], before.Statuses);
        Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);
        Assert.Contains(
            "Quota:Pools:daily:Tenants:e2e:Limit must be ≤ the pool's Limit (250), got 300.",
            (await JsonAsync(invalid)).GetProperty("errors").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(HttpStatusCode.OK, changed.StatusCode);
        Assert.Equal(5, Tenant((await JsonAsync(changed)), "e2e").GetProperty("limit").GetInt64());
        Assert.True(
            next == HttpStatusCode.OK && watch.Elapsed < TimeSpan.FromSeconds(1),
            $"The other replica's answers after the override:\n{string.Join("\n", answers.Take(3).Concat(answers.TakeLast(3)).Distinct())}\nIts log:\n{string.Join("\n", serving.Logs.Lines)}");
        await using (var connection = new NpgsqlConnection(ledger))
        {
            var audit = (await connection.QueryAsync<(string Actor, string Action, string Pool, string Tenant, string Old, string New)>(
                "SELECT actor, action, pool, tenant, old::text, new::text FROM admin_audit ORDER BY id")).ToList();
            var row = Assert.Single(audit);
            Assert.Equal(("ops", "override", "daily", "e2e"), (row.Actor, row.Action, row.Pool, row.Tenant));
            Assert.Equal(2, JsonDocument.Parse(row.Old).RootElement.GetProperty("limit").GetInt64());
            Assert.Equal(5, JsonDocument.Parse(row.New).RootElement.GetProperty("limit").GetInt64());
        }

        // A replica that starts afterwards (a restart, a scale-out) applies it before it serves.
        await serving.DisposeAsync();
        await using var restarted = await ProxyInstance.StartAsync(other);
        var after = await restarted.SendAsync("e2e-key", 3, "/quotes/x");
        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests], after.Statuses); // 3 + 2 = its new limit of 5
        using var trail = await AdminAsync(admin, HttpMethod.Get, "/admin/v1/audit");
        Assert.Equal("override", (await JsonAsync(trail)).GetProperty("entries")[0].GetProperty("action").GetString());

        // Reopening a pool (ending a vendor closure) is audited like any change.
        using var reopened = await AdminAsync(admin, HttpMethod.Post, "/admin/v1/pools/daily/reopen");
        using var trailAfter = await AdminAsync(admin, HttpMethod.Get, "/admin/v1/audit");
        Assert.Equal(HttpStatusCode.OK, reopened.StatusCode);
        Assert.Equal("reopen", (await JsonAsync(trailAfter)).GetProperty("entries")[0].GetProperty("action").GetString());
    }

    [Fact]
    public async Task RemovingAnOverride_BringsBackTheConfiguredValue()
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor, LoopbackPorts.Free()));

        (await AdminAsync(proxy, HttpMethod.Put, "/admin/v1/pools/daily/overrides/e2e", new { limit = 5, allocation = 4 })).Dispose();
        using var removed = await AdminAsync(proxy, HttpMethod.Delete, "/admin/v1/pools/daily/overrides/e2e");

        var e2e = Tenant((await JsonAsync(removed)), "e2e");
        Assert.Equal(2, e2e.GetProperty("limit").GetInt64());
        Assert.False(e2e.TryGetProperty("override", out var value) && value.ValueKind != JsonValueKind.Null);
        Assert.Equal(2, (await proxy.SendAsync("e2e-key", 3, "/quotes/x")).Admitted);
    }

    [Fact]
    public async Task Reset_GivesATenantItsCreditsBackForThisWindow_AndTheNextRequestIsAdmitted()
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor, LoopbackPorts.Free()));
        var spent = await proxy.SendAsync("e2e-key", 3, "/quotes/x");
        (await proxy.GetAsync("prod-key", "/quotes/x")).Dispose();

        using var reset = await AdminAsync(proxy, HttpMethod.Post, "/admin/v1/pools/daily/reset", new { tenant = "e2e" });
        using var status = await AdminAsync(proxy, HttpMethod.Get, "/admin/v1/status");
        var again = await proxy.SendAsync("e2e-key", 1, "/quotes/x");
        using var unknownPool = await AdminAsync(proxy, HttpMethod.Post, "/admin/v1/pools/nightly/reset", new { });

        Assert.Equal(2, spent.Admitted);
        Assert.Equal(HttpStatusCode.OK, reset.StatusCode);
        Assert.Equal(0, Tenant((await JsonAsync(reset)), "e2e").GetProperty("used").GetInt64());
        var pool = (await JsonAsync(status)).GetProperty("pools")[0];
        Assert.Equal((1L, 1L), (pool.GetProperty("used").GetInt64(), Tenant(pool, "prod").GetProperty("used").GetInt64()));
        Assert.Equal(1, again.Admitted);
        Assert.Equal(HttpStatusCode.NotFound, unknownPool.StatusCode);
    }

    [Fact]
    public async Task Usage_FromTheLedger_AsJsonAndCsv()
    {
        using var vendor = new VendorServer();
        var ledger = await postgres.NewDatabaseAsync();
        var prefix = RedisFixture.NewKeyPrefix();
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor, LoopbackPorts.Free())
            .Redis(redis.ConnectionString, prefix, timeout: TimeSpan.FromSeconds(2))
            .Set("Quota:Ledger:ConnectionString", ledger)
            .Set("Quota:Ledger:PollInterval", "00:00:00.050"));
        // The three requests must fall on the day the query asks for, whenever the test runs.
        var today = (await UtcDay.WithAtLeastAsync(TimeSpan.FromSeconds(10))).ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture);
        await proxy.SendAsync("prod-key", 3, "/quotes/x");
        var query = $"/admin/v1/usage?from={today}&to={today}";
        // 503 until the flusher has migrated the schema, then the rows as they are flushed.
        var json = await Poll.UntilAsync(
            "the usage of 3 credits",
            async () =>
            {
                using var response = await AdminAsync(proxy, HttpMethod.Get, query);
                return response.StatusCode == HttpStatusCode.OK ? await JsonAsync(response) : default;
            },
            usage => usage.ValueKind == JsonValueKind.Object && usage.GetProperty("usage").EnumerateArray().Sum(row => row.GetProperty("net").GetInt64()) == 3,
            TimeSpan.FromSeconds(10));

        using var csv = await AdminAsync(proxy, HttpMethod.Get, query + "&format=csv");
        using var cliOutput = new StringWriter();
        var cli = await QuotaProxy.Cli.Quotactl.RunAsync(
            ["usage", "--from", today, "--to", today, "--csv", "--url", proxy.AdminAddress!.ToString(), "--key", AdminKey], cliOutput, TextWriter.Null);
        using var cliTable = new StringWriter();
        await QuotaProxy.Cli.Quotactl.RunAsync(["usage", "--from", today, "--to", today, "--url", proxy.AdminAddress!.ToString(), "--key", AdminKey], cliTable, TextWriter.Null);
        using var badRange = await AdminAsync(proxy, HttpMethod.Get, "/admin/v1/usage?from=2030-01-02&to=2030-01-01");

        var row = json.GetProperty("usage").EnumerateArray().Single();
        Assert.Equal(("daily", "prod", "quotes", 3L), (row.GetProperty("pool").GetString(), row.GetProperty("tenant").GetString(), row.GetProperty("route").GetString(), row.GetProperty("debited").GetInt64()));
        Assert.Equal("text/csv", csv.Content.Headers.ContentType!.MediaType);
        Assert.Equal(
            ["day,pool,tenant,route,debited,overage,refunded,adjusted,net,events", $"{today},daily,prod,quotes,3,0,0,0,3,3"],
            (await csv.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(HttpStatusCode.BadRequest, badRange.StatusCode);
        Assert.Equal((0, $"day,pool,tenant,route,debited,overage,refunded,adjusted,net,events\n{today},daily,prod,quotes,3,0,0,0,3,3\n"), (cli, cliOutput.ToString()));
        Assert.Matches($@"\n{today}  daily +prod +quotes +3 +0 +3\n", cliTable.ToString());
    }

    [Fact]
    public async Task OpenApiDocument_DescribesEveryAdminEndpoint()
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor, LoopbackPorts.Free()));

        using var response = await AdminAsync(proxy, HttpMethod.Get, "/admin/v1/openapi.json");
        var paths = (await JsonAsync(response)).GetProperty("paths");

        var documented = paths.EnumerateObject().SelectMany(path => path.Value.EnumerateObject()
            .Where(op => op.Name is "get" or "put" or "post" or "delete")
            .Select(op => $"{op.Name.ToUpperInvariant()} {path.Name}")).ToHashSet();
        var mapped = proxy.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Where(e => e.RoutePattern.RawText?.StartsWith(AdminApi.Prefix, StringComparison.Ordinal) == true)
            .SelectMany(e => e.Metadata.GetMetadata<Microsoft.AspNetCore.Routing.HttpMethodMetadata>()!.HttpMethods
                .Select(m => $"{m} {e.RoutePattern.RawText!.Replace("{**", "{", StringComparison.Ordinal)}"))
            .ToHashSet();
        Assert.Equal(13, mapped.Count);
        Assert.Equal(mapped.Order(), documented.Order());
    }
}
