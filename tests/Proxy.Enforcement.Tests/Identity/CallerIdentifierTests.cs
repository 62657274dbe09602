using Microsoft.AspNetCore.Http;
using QuotaProxy.Enforcement.Identity;

namespace QuotaProxy.Enforcement.Tests.Identity;

/// <summary>
/// Identifying a caller by API key: configured keys by their digest, runtime keys through the lookup the
/// identifier is handed (asked every time, so a revoked key stops at once), digests of recent keys cached
/// within a bound.
/// </summary>
public sealed class CallerIdentifierTests
{
    private static CallerIdentifier Identifier(string? pepper = null) =>
        new("X-Api-Key", "X-Tenant", [new(ApiKeyHash.Compute("prod-key", pepper), "prod")], trustTenantHeader: false, [], pepper);

    private static HttpContext With(string key)
    {
        var context = new DefaultHttpContext();
        context.Request.Headers["X-Api-Key"] = key;
        return context;
    }

    [Theory]
    [InlineData(null)]
    [InlineData("pepper")]
    public void AKeySeenBefore_IdentifiesTheSame_AndAnUnknownOneNobody(string? pepper)
    {
        var identifier = Identifier(pepper);
        Assert.Equal("prod", identifier.Identify(With("prod-key")));
        Assert.Equal("prod", identifier.Identify(With("prod-key")));
        Assert.Null(identifier.Identify(With("other-key")));
        Assert.Null(identifier.Identify(With("other-key")));
    }

    [Fact]
    public void ARuntimeKey_IsAskedEveryTime_SoARevocationStopsItAtOnce()
    {
        var identifier = Identifier();
        var revoked = false;
        var runtimeDigest = ApiKeyHash.Compute("qp_runtime");
        string? Runtime(string digest) => digest == runtimeDigest && !revoked ? "test" : null;
        Assert.Equal("test", identifier.Identify(With("qp_runtime"), Runtime));
        revoked = true;
        Assert.Null(identifier.Identify(With("qp_runtime"), Runtime));
    }

    [Fact]
    public void ManyDistinctKeys_NeverGrowTheCachePastItsBound_AndTheConfiguredKeyStillIdentifies()
    {
        var identifier = Identifier();
        for (var i = 0; i < CallerIdentifier.MaxCachedDigests * 2 + 5; i++)
        {
            Assert.Null(identifier.Identify(With($"random-{i}")));
        }

        Assert.True(identifier.CachedDigests <= CallerIdentifier.MaxCachedDigests, $"{identifier.CachedDigests} digests cached");
        Assert.Equal("prod", identifier.Identify(With("prod-key")));
    }
}
