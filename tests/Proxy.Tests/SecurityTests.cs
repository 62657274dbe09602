using System.Net;
using System.Text;
using Dapper;
using Npgsql;
using QuotaProxy.Testing;
using Microsoft.Extensions.Configuration;

namespace QuotaProxy.Tests;

/// <summary>
/// What an attacker or a careless operator could get out of the proxy besides vendor calls: secrets in
/// logs, arbitrary text in the ledger, and the admin API (docs/security.md).
/// </summary>
[Collection(LedgerCollection.Name)]
public sealed class SecurityTests(RedisFixture redis, PostgresFixture postgres)
{
    private const string Secret = "s3cret-Pa55word";

    [Fact]
    public async Task ConnectionStringPasswords_AppearInNoLogLine_NorInReadyz_EvenWhileTheStoreIsUnreachable()
    {
        using var vendor = new VendorServer();
        var ledger = new NpgsqlConnectionStringBuilder(await postgres.NewDatabaseAsync()) { Password = "pg-" + Secret }.ConnectionString;
        var config = new TestProxyConfig(vendor.Url)
            .Pool("daily", 100, "1d", "UTC", ("prod", null))
            .Route("quotes", pool: "daily", cost: 1)
            .ApiKey("prod-key", "prod")
            // Nothing listens there: the proxy logs why it cannot connect, many times over.
            .Redis($"127.0.0.1:{LoopbackPorts.Free()},password=redis-{Secret}", RedisFixture.NewKeyPrefix())
            .Set("Quota:Ledger:ConnectionString", ledger)
            .Set("Logging:LogLevel:Default", "Trace");
        await using var proxy = await ProxyInstance.StartAsync(config);

        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 5; i++)
        {
            using var response = await proxy.GetAsync("prod-key", "/quotes/AAPL");
            statuses.Add(response.StatusCode);
        }

        var readyz = await proxy.Client.GetStringAsync("/readyz");

        Assert.All(statuses, status => Assert.Equal(HttpStatusCode.ServiceUnavailable, status));
        var configured = Assert.Single(proxy.Logs.Lines, line => line.Contains("[1102]", StringComparison.Ordinal));
        Assert.Contains("127.0.0.1:", configured, StringComparison.Ordinal);
        Assert.True(proxy.Logs.Lines.Count > 20, $"only {proxy.Logs.Lines.Count} lines were logged");
        Assert.DoesNotContain(proxy.Logs.Lines, line => line.Contains(Secret, StringComparison.Ordinal));
        Assert.DoesNotContain(Secret, readyz, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RequestIds_AreStoredInTheLedgerOnlyWhenShortAndVisibleAscii_ElseTheTraceIdStandsIn()
    {
        using var vendor = new VendorServer();
        var ledger = await postgres.NewDatabaseAsync();
        var prefix = RedisFixture.NewKeyPrefix();
        await using var proxy = await ProxyInstance.StartAsync(new TestProxyConfig(vendor.Url)
            .Pool("daily", 100, "1d", "UTC", ("prod", null))
            .Route("quotes", pool: "daily", cost: 1)
            .ApiKey("prod-key", "prod")
            .Redis(redis.ConnectionString, prefix)
            .Set("Quota:Ledger:ConnectionString", ledger)
            .Set("Quota:Ledger:PollInterval", "00:00:00.050"));
        string[] sent = ["order-42", new string('x', 128), new string('y', 129), "two words", "tab\there"];

        foreach (var id in sent)
        {
            using var message = new HttpRequestMessage(HttpMethod.Get, "/quotes/AAPL");
            message.Headers.Add("X-Api-Key", "prod-key");
            message.Headers.TryAddWithoutValidation("X-Request-Id", id);
            using var response = await proxy.Client.SendAsync(message);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        await LedgerDrain.UntilAsync(redis.Connection.GetDatabase(), ledger, expectedCredits: sent.Length, [new Enforcement.Redis.RedisKeys(prefix).EventStream("daily")]);
        await using var connection = new NpgsqlConnection(ledger);
        var stored = (await connection.QueryAsync<string>("SELECT request_id FROM usage_events")).ToList();

        Assert.Equal(sent.Length, stored.Count);
        Assert.Contains("order-42", stored);
        Assert.Contains(new string('x', 128), stored);
        Assert.All(stored, id => Assert.True(id.Length <= 128 && id.All(c => c is >= '!' and <= '~'), $"stored request id '{id}'"));
        Assert.Equal(5, stored.Distinct().Count());
    }

    [Fact]
    public async Task AdminKey_IsCheckedBeforeAnyBodyIsRead_AndAFailureIsLoggedWithoutTheKey_AndCounted()
    {
        using var vendor = new VendorServer();
        var config = new TestProxyConfig(vendor.Url)
            .Pool("daily", 100, "1d", "UTC", ("prod", null))
            .Route("quotes", pool: "daily", cost: 1)
            .Redis(redis.ConnectionString, RedisFixture.NewKeyPrefix())
            .Admin(LoopbackPorts.Free(), "the-admin-key");
        await using var proxy = await ProxyInstance.StartAsync(config);
        const string Guess = "guessed-admin-key-12345";

        async Task<HttpStatusCode> SendAsync(string? key, string body, string mediaType = "application/json")
        {
            using var message = new HttpRequestMessage(HttpMethod.Put, "/admin/v1/pools/daily/overrides/prod") { Content = new StringContent(body, Encoding.UTF8, mediaType) };
            if (key is not null)
            {
                message.Headers.Add("X-Admin-Key", key);
            }

            using var response = await proxy.Admin!.SendAsync(message);
            return response.StatusCode;
        }

        var noKeyBadJson = await SendAsync(null, "{not json");
        var wrongKeyWrongMediaType = await SendAsync(Guess, "<xml/>", "application/xml");
        var rightKeyBadJson = await SendAsync("the-admin-key", "{not json");
        var metrics = await proxy.MetricsAsync();

        Assert.Equal(HttpStatusCode.Unauthorized, noKeyBadJson);
        Assert.Equal(HttpStatusCode.Unauthorized, wrongKeyWrongMediaType);
        Assert.Equal(HttpStatusCode.BadRequest, rightKeyBadJson);
        Assert.Equal(1, metrics.Value("quota_proxy_admin_auth_failures_total", ("reason", "missing")));
        Assert.Equal(1, metrics.Value("quota_proxy_admin_auth_failures_total", ("reason", "unknown")));
        var failures = proxy.Logs.Lines.Where(line => line.Contains("[1301]", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, failures.Count);
        Assert.Contains("PUT /admin/v1/pools/daily/overrides/prod", failures[1], StringComparison.Ordinal);
        Assert.DoesNotContain(proxy.Logs.Lines, line => line.Contains(Guess, StringComparison.Ordinal) || line.Contains("the-admin-key", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AdminKeys_ReloadLive_ARevokedKeyIsRefusedWithoutARestart()
    {
        using var vendor = new VendorServer();
        var file = Path.Combine(Directory.CreateTempSubdirectory("quotaproxy-admin-").FullName, "config.json");
        var port = LoopbackPorts.Free();
        TestProxyConfig Config(string key) => new TestProxyConfig(vendor.Url)
            .Pool("daily", 100, "1d", "UTC", ("prod", null))
            .Route("quotes", pool: "daily", cost: 1)
            .Redis(redis.ConnectionString, "qp-admin-reload")
            .Admin(port, key);
        await using var proxy = await ProxyInstance.StartFromFileAsync(Config("old-admin-key"), file);

        async Task<HttpStatusCode> StatusAsync(string key)
        {
            using var message = new HttpRequestMessage(HttpMethod.Get, "/admin/v1/status");
            message.Headers.Add("X-Admin-Key", key);
            using var response = await proxy.Admin!.SendAsync(message);
            return response.StatusCode;
        }

        var before = (Old: await StatusAsync("old-admin-key"), New: await StatusAsync("new-admin-key"));
        Config("new-admin-key").WriteJson(file);
        var after = await Poll.UntilAsync(
            "the new admin key to replace the old one",
            async () => (Old: await StatusAsync("old-admin-key"), New: await StatusAsync("new-admin-key")),
            seen => seen.Old == HttpStatusCode.Unauthorized && seen.New == HttpStatusCode.OK, // both asked after the reload
            TimeSpan.FromSeconds(10));

        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.Unauthorized), before);
        Assert.Equal((HttpStatusCode.Unauthorized, HttpStatusCode.OK), after);
    }

    [Fact]
    public async Task TheAdminPort_ServesOnlyTheAdminApi_AndListeningOnEveryInterfaceIsWarnedOf()
    {
        using var vendor = new VendorServer();
        var port = LoopbackPorts.Free();
        var config = new TestProxyConfig(vendor.Url)
            .Pool("daily", 100, "1d", "UTC", ("prod", null))
            .Route("quotes", pool: "daily", cost: 1)
            .ApiKey("prod-key", "prod")
            .Redis(redis.ConnectionString, RedisFixture.NewKeyPrefix())
            .Admin(port, "the-admin-key")
            .Set("Quota:Admin:Url", $"http://0.0.0.0:{port}");
        await using var proxy = await ProxyInstance.StartAsync(config);
        using var admin = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };

        var statuses = new List<HttpStatusCode>();
        foreach (var path in new[] { "/metrics", "/readyz", "/quotes/AAPL", "/" })
        {
            using var message = new HttpRequestMessage(HttpMethod.Get, path);
            message.Headers.Add("X-Api-Key", "prod-key");
            message.Headers.Add("X-Admin-Key", "the-admin-key");
            using var response = await admin.SendAsync(message);
            statuses.Add(response.StatusCode);
        }

        using var status = new HttpRequestMessage(HttpMethod.Get, "/admin/v1/status");
        status.Headers.Add("X-Admin-Key", "the-admin-key");
        using var adminAnswer = await admin.SendAsync(status);
        using var onProxyPort = await proxy.Client.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/admin/v1/status") { Headers = { { "X-Admin-Key", "the-admin-key" } } });

        Assert.All(statuses, code => Assert.Equal(HttpStatusCode.NotFound, code));
        Assert.Empty(vendor.Calls);
        Assert.Equal(HttpStatusCode.OK, adminAnswer.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, onProxyPort.StatusCode);
        Assert.Contains(proxy.Logs.Lines, line => line.Contains("[1303]", StringComparison.Ordinal));
    }

    [Fact]
    public void AnAdminUrlOnTheProxysOwnPort_StopsTheStartWithAClearError()
    {
        var port = LoopbackPorts.Free();
        var error = Assert.Throws<Microsoft.Extensions.Options.OptionsValidationException>(() => QuotaProxyHost.Build(
            [],
            builder =>
            {
                builder.Sources.Clear();
                builder.AddInMemoryCollection(new Dictionary<string, string?>
                {
                    ["Urls"] = $"http://127.0.0.1:{port}",
                    ["Quota:Admin:Url"] = $"http://127.0.0.1:{port}",
                });
            },
            _ => { }));

        Assert.Contains($"Quota:Admin:Url http://127.0.0.1:{port} is on the proxy's own port", Assert.Single(error.Failures), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("=HYPERLINK(\"http://evil\")", "\"'=HYPERLINK(\"\"http://evil\"\")\"")]
    [InlineData("+1", "'+1")]
    [InlineData("-cmd", "'-cmd")]
    [InlineData("@SUM(A1)", "'@SUM(A1)")]
    [InlineData("prod", "prod")]
    public void CsvCells_ThatASpreadsheetWouldRunAsAFormula_AreNeutralised(string value, string cell) =>
        Assert.Equal(cell, Enforcement.Admin.AdminApi.Csv(value));

    [Fact]
    public async Task WithAKeyPepper_KeysAreCheckedByTheirHmac_AndAPlainSha256OfTheKeyIdentifiesNobody()
    {
        using var vendor = new VendorServer();
        const string Pepper = "a-server-side-pepper-0123456789";
        await using var proxy = await ProxyInstance.StartAsync(new TestProxyConfig(vendor.Url)
            .Pool("daily", 100, "1d", "UTC", ("prod", null), ("test", null))
            .Route("quotes", pool: "daily", cost: 1)
            .ApiKey("prod-key", "prod", Pepper)
            .ApiKey("test-key", "test") // its plain SHA-256: what a config without the pepper would hold
            .Redis(redis.ConnectionString, RedisFixture.NewKeyPrefix())
            .Set("Quota:Identity:KeyPepper", Pepper));

        using var peppered = await proxy.GetAsync("prod-key", "/quotes/AAPL");
        using var plain = await proxy.GetAsync("test-key", "/quotes/AAPL");

        Assert.Equal(HttpStatusCode.OK, peppered.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, plain.StatusCode);
        Assert.NotEqual(Enforcement.Identity.ApiKeyHash.Compute("prod-key"), Enforcement.Identity.ApiKeyHash.Compute("prod-key", Pepper));
    }
}
