using System.Net;
using QuotaProxy.Enforcement.Redis;
using QuotaProxy.Testing;

namespace QuotaProxy.Tests;

/// <summary>
/// Redis over TLS with an ACL user, as production should run it: a redis-server of the test's own with a
/// certificate from a self-signed CA, the proxy trusting that CA only through its configuration.
/// </summary>
public sealed class TransportSecurityTests
{
    private const string User = "quotaproxy", Password = "tls-user-s3cret";

    private static TestProxyConfig Config(VendorServer vendor, string redis, string? authority, string prefix) => new TestProxyConfig(vendor.Url)
        .Pool("daily", 100, "1d", "UTC", ("prod", null))
        .Route("quotes", pool: "daily", cost: 1)
        .ApiKey("prod-key", "prod")
        .Redis(redis, prefix)
        .Set("Quota:Store:TlsCaCertificate", authority);

    [Fact]
    public async Task RedisOverTlsWithAnAclUser_Decides_OnlyWhenTheProxyTrustsItsCaAndHoldsTheUsersPassword()
    {
        using var authority = new TestCertificateAuthority();
        await using var redis = await LocalRedisServer.StartWithTlsAsync(authority, "--user", "default", "off", "--user", User, "on", $">{Password}", "~*", "&*", "+@all");
        using var vendor = new VendorServer();
        var tls = $"127.0.0.1:{redis.TlsPort},ssl=true,sslHost=localhost,user={User},password={Password}";
        var prefix = RedisFixture.NewKeyPrefix();

        HttpStatusCode trusted, untrusted, wrongPassword;
        await using (var proxy = await ProxyInstance.StartAsync(Config(vendor, tls, authority: null, RedisFixture.NewKeyPrefix())))
        {
            using var response = await proxy.GetAsync("prod-key", "/quotes/AAPL");
            untrusted = response.StatusCode;
        }

        await using (var proxy = await ProxyInstance.StartAsync(Config(vendor, tls, authority.CaCertificateFile, prefix)))
        {
            using var response = await proxy.GetAsync("prod-key", "/quotes/AAPL");
            trusted = response.StatusCode;
        }

        await using (var proxy = await ProxyInstance.StartAsync(Config(vendor, tls.Replace(Password, "guessed", StringComparison.Ordinal), authority.CaCertificateFile, RedisFixture.NewKeyPrefix())))
        {
            using var response = await proxy.GetAsync("prod-key", "/quotes/AAPL");
            wrongPassword = response.StatusCode;
        }

        await using var plain = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync($"{redis.ConnectionString},user={User},password={Password}");
        var counted = (long)await plain.GetDatabase().HashGetAsync(new RedisKeys(prefix).PoolUsage("daily"), "t:prod");

        Assert.Equal(HttpStatusCode.OK, trusted);
        Assert.Equal(1, counted); // decided in that Redis, over TLS
        Assert.Equal(HttpStatusCode.ServiceUnavailable, untrusted); // a certificate from a CA nobody said to trust
        Assert.Equal(HttpStatusCode.ServiceUnavailable, wrongPassword);
        Assert.Single(vendor.Calls);
    }
}
