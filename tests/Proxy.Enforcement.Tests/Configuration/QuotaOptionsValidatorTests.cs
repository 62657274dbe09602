using Microsoft.Extensions.Configuration;
using QuotaProxy.Enforcement.Configuration;
using QuotaProxy.Enforcement.Identity;

namespace QuotaProxy.Enforcement.Tests.Configuration;

/// <summary>One invalid config per rule, with the exact message asserted; the valid base config has no errors.</summary>
public sealed class QuotaOptionsValidatorTests
{
    private static readonly string ProdKeyHash = ApiKeyHash.Compute("prod-key");

    private static Dictionary<string, string?> ValidConfig() => new()
    {
        ["ReverseProxy:Routes:quotes:ClusterId"] = "vendor",
        ["ReverseProxy:Routes:quotes:Match:Path"] = "/quotes/{**rest}",
        ["ReverseProxy:Routes:quotes:Metadata:Quota.Pool"] = "vendor-daily",
        ["ReverseProxy:Routes:quotes:Metadata:Quota.Cost"] = "5",
        ["ReverseProxy:Routes:health:ClusterId"] = "vendor",
        ["ReverseProxy:Routes:health:Match:Path"] = "/health",
        ["Quota:Pools:vendor-daily:Limit"] = "250",
        ["Quota:Pools:vendor-daily:Window"] = "1d",
        ["Quota:Pools:vendor-daily:TimeZone"] = "America/New_York",
        ["Quota:Pools:vendor-daily:Tenants:prod:Limit"] = "250",
        ["Quota:Pools:vendor-daily:Tenants:e2e:Limit"] = "20",
        ["Quota:Identity:ApiKeys:0:Sha256"] = ProdKeyHash,
        ["Quota:Identity:ApiKeys:0:Tenant"] = "prod",
        ["Quota:Identity:TrustedNetworks:0"] = "10.0.0.0/8",
        ["Quota:Upstreams:vendor:Credential:Header"] = "X-Vendor-Key",
        ["Quota:Upstreams:vendor:Credential:EnvironmentVariable"] = "VENDOR_API_KEY",
    };

    private static List<string> Validate(Dictionary<string, string?> values)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(values).Build();
        CandidateConfiguration.Load(configuration, new Dictionary<string, TenantOverride>(), name => name == "VENDOR_API_KEY" ? "secret" : null, out var errors);
        return errors;
    }

    private static List<string> ValidateWith(string key, string? value) => ValidateWith((key, value));

    private static List<string> ValidateWith(params (string Key, string? Value)[] changes)
    {
        var values = ValidConfig();
        foreach (var (key, value) in changes)
        {
            values[key] = value;
        }

        return Validate(values);
    }

    [Fact]
    public void Validate_ValidConfig_HasNoErrors() => Assert.Empty(Validate(ValidConfig()));

    [Fact]
    public void Validate_ALease_IsAccepted_AndTheModelCarriesIt()
    {
        var values = ValidConfig();
        values["Quota:Pools:vendor-daily:Lease:MaxCredits"] = "25";
        values["Quota:Pools:vendor-daily:Lease:Ttl"] = "00:00:00.500";
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(values).Build();
        var snapshot = CandidateConfiguration.Load(configuration, new Dictionary<string, TenantOverride>(), name => name == "VENDOR_API_KEY" ? "secret" : null, out var errors);
        Assert.Empty(errors);
        Assert.Equal(new QuotaProxy.Enforcement.Quotas.LeaseSettings(25, TimeSpan.FromMilliseconds(500)), snapshot!.Model.Pools["vendor-daily"].Lease);
    }

    [Fact]
    public void Validate_ALeaseOutOfBounds_ListsBothErrors() => Assert.Equal(
        [
            "Quota:Pools:vendor-daily:Lease:MaxCredits must be between 1 and the pool's Limit (250), got 251.",
            "Quota:Pools:vendor-daily:Lease:Ttl must be between 00:00:00.010 and 00:01:00 (credits a lease holds are unavailable to other replicas until it ends), got 00:05:00.",
        ],
        ValidateWith(("Quota:Pools:vendor-daily:Lease:MaxCredits", "251"), ("Quota:Pools:vendor-daily:Lease:Ttl", "00:05:00")));

    [Fact]
    public void Validate_RouteNamesUnknownPool_NamesTheRouteAndTheKnownPools() => Assert.Equal(
        ["ReverseProxy:Routes:quotes:Metadata:Quota.Pool names unknown pool 'vendor-dialy'; known pools: vendor-daily."],
        ValidateWith("ReverseProxy:Routes:quotes:Metadata:Quota.Pool", "vendor-dialy"));

    [Theory]
    [InlineData("0")]
    [InlineData("-3")]
    [InlineData("2.5")]
    [InlineData("five")]
    public void Validate_NonPositiveOrNonIntegerCost_IsRejected(string cost) => Assert.Equal(
        [$"ReverseProxy:Routes:quotes:Metadata:Quota.Cost must be a positive integer, got '{cost}'."],
        ValidateWith("ReverseProxy:Routes:quotes:Metadata:Quota.Cost", cost));

    [Theory]
    [InlineData("yes", null)]
    [InlineData("true", "0")]
    [InlineData("true", "101")]
    [InlineData("true", "many")]
    public void Validate_BadVendorIdempotentOrMaxReplays_IsRejected(string vendorIdempotent, string? maxReplays) => Assert.Equal(
        [$"ReverseProxy:Routes:quotes:Metadata:Quota.VendorIdempotent must be true or false, and Quota.MaxReplays an integer from 1 to 100; got '{vendorIdempotent}' and '{maxReplays}'."],
        ValidateWith(("ReverseProxy:Routes:quotes:Metadata:Quota.VendorIdempotent", vendorIdempotent), ("ReverseProxy:Routes:quotes:Metadata:Quota.MaxReplays", maxReplays)));

    [Fact]
    public void Validate_MaxReplaysOnARouteTheVendorDoesNotDeclareIdempotent_IsRejected() => Assert.Equal(
        ["ReverseProxy:Routes:quotes:Metadata:Quota.MaxReplays is set but Quota.VendorIdempotent is not true; replays are free only where the vendor honours the key."],
        ValidateWith("ReverseProxy:Routes:quotes:Metadata:Quota.MaxReplays", "2"));

    [Fact]
    public void Validate_CostFromResponseHeader_NeedsMaxCost_InsteadOfCost()
    {
        const string Route = "ReverseProxy:Routes:quotes:Metadata:";
        Assert.Equal(
            [$"{Route}Quota.CostFromResponseHeader needs Quota.MaxCost, the most one request may cost (a positive integer), got '': it is reserved up front, and a header above it is capped."],
            ValidateWith(($"{Route}Quota.CostFromResponseHeader", "X-Credits-Used"), ($"{Route}Quota.Cost", null)));
        Assert.Equal(
            [$"{Route}Quota.Cost is set with Quota.CostFromResponseHeader; the reservation is Quota.MaxCost, so remove Quota.Cost."],
            ValidateWith(($"{Route}Quota.CostFromResponseHeader", "X-Credits-Used"), ($"{Route}Quota.MaxCost", "10")));
        Assert.Equal(
            [$"{Route}Quota.MaxCost is set but Quota.CostFromResponseHeader is not; a fixed cost needs no maximum."],
            ValidateWith($"{Route}Quota.MaxCost", "10"));
        Assert.Empty(ValidateWith(($"{Route}Quota.CostFromResponseHeader", "X-Credits-Used"), ($"{Route}Quota.MaxCost", "10"), ($"{Route}Quota.Cost", null)));
    }

    [Fact]
    public void Validate_NamesOutsideTheSafeSet_AreRejected()
    {
        var values = ValidConfig();
        foreach (var key in values.Keys.Where(k => k.StartsWith("Quota:Pools:vendor-daily:", StringComparison.Ordinal)).ToList())
        {
            values[key.Replace("vendor-daily", "vendor}daily", StringComparison.Ordinal).Replace("Tenants:e2e", "Tenants:e2e team", StringComparison.Ordinal)] = values[key];
            values.Remove(key);
        }

        values["ReverseProxy:Routes:quotes:Metadata:Quota.Pool"] = "vendor}daily";
        values["Quota:Identity:ApiKeys:0:Tenant"] = "prod";
        var errors = Validate(values);

        Assert.Contains("Quota:Pools:vendor}daily: the pool name 'vendor}daily' may use only ASCII letters, digits, '.', '_' and '-', start with a letter or digit, and be at most 64 characters.", errors);
        Assert.Contains("Quota:Pools:vendor}daily:Tenants:e2e team: the tenant name 'e2e team' may use only ASCII letters, digits, '.', '_' and '-', start with a letter or digit, and be at most 64 characters.", errors);
    }

    [Fact]
    public void Validate_CostWithoutPool_IsRejected() => Assert.Equal(
        ["ReverseProxy:Routes:health:Metadata:Quota.Cost is set but Quota.Pool is not; name the pool the cost is charged to."],
        ValidateWith("ReverseProxy:Routes:health:Metadata:Quota.Cost", "2"));

    [Theory]
    [InlineData("0")]
    [InlineData("-250")]
    public void Validate_NonPositivePoolLimit_IsRejected(string limit)
    {
        var values = ValidConfig();
        values["Quota:Pools:vendor-daily:Limit"] = limit;
        values["Quota:Pools:vendor-daily:Tenants:prod:Limit"] = null;
        values["Quota:Pools:vendor-daily:Tenants:e2e:Limit"] = null;

        Assert.Equal([$"Quota:Pools:vendor-daily:Limit must be a positive integer (credits per window), got {limit}."], Validate(values));
    }

    [Fact]
    public void Validate_NonPositiveTenantLimit_IsRejected() => Assert.Equal(
        ["Quota:Pools:vendor-daily:Tenants:e2e:Limit must be a positive integer, got 0; remove it to use the pool's Limit."],
        ValidateWith("Quota:Pools:vendor-daily:Tenants:e2e:Limit", "0"));

    [Fact]
    public void Validate_TenantLimitAbovePool_IsRejected() => Assert.Equal(
        ["Quota:Pools:vendor-daily:Tenants:e2e:Limit must be ≤ the pool's Limit (250), got 300."],
        ValidateWith("Quota:Pools:vendor-daily:Tenants:e2e:Limit", "300"));

    [Theory]
    [InlineData("1w")]
    [InlineData("24h")]
    [InlineData("")]
    public void Validate_BadWindow_IsRejected(string window) => Assert.Equal(
        [$"Quota:Pools:vendor-daily:Window must be one of 1s, 1m, 1h, 1d, 1mo, got '{window}'."],
        ValidateWith("Quota:Pools:vendor-daily:Window", window));

    [Fact]
    public void Validate_BadTimeZone_IsRejected() => Assert.Equal(
        ["Quota:Pools:vendor-daily:TimeZone 'Mars/Olympus_Mons' is not a known IANA time zone (such as UTC, Europe/Berlin, America/New_York)."],
        ValidateWith("Quota:Pools:vendor-daily:TimeZone", "Mars/Olympus_Mons"));

    [Fact]
    public void Validate_ApiKeyThatIsNotASha256_IsRejectedWithoutEchoingIt()
    {
        var errors = ValidateWith("Quota:Identity:ApiKeys:0:Sha256", "sk-live-raw-key");

        Assert.Equal(["Quota:Identity:ApiKeys:0:Sha256 must be the key's SHA-256 as 64 hex characters (printf %s \"$KEY\" | sha256sum), got 15 characters."], errors);
        Assert.DoesNotContain("sk-live", errors[0]);
    }

    [Fact]
    public void Validate_OneKeyMappedTwice_IsRejectedEvenInAnotherCase()
    {
        var values = ValidConfig();
        values["Quota:Identity:ApiKeys:1:Sha256"] = ProdKeyHash.ToUpperInvariant();
        values["Quota:Identity:ApiKeys:1:Tenant"] = "e2e";

        Assert.Equal(
            ["Quota:Identity:ApiKeys:1:Sha256 is the same key as Quota:Identity:ApiKeys:0:Sha256; a key maps to exactly one tenant, remove one of them."],
            Validate(values));
    }

    [Fact]
    public void Validate_ApiKeyForUnknownTenant_IsRejected() => Assert.Equal(
        ["Quota:Identity:ApiKeys:0:Tenant 'staging' is not a tenant of any pool; add it under Quota:Pools:<pool>:Tenants (a nested tenant is named by its path, such as acme/search)."],
        ValidateWith("Quota:Identity:ApiKeys:0:Tenant", "staging"));

    [Fact]
    public void Validate_GuaranteedAboveAllocation_IsRejected() => Assert.Equal(
        ["Quota:Pools:vendor-daily:Tenants:e2e:Guaranteed (8) must be ≤ Allocation (5); raise Allocation or lower Guaranteed."],
        ValidateWith(("Quota:Pools:vendor-daily:Tenants:e2e:Allocation", "5"), ("Quota:Pools:vendor-daily:Tenants:e2e:Guaranteed", "8")));

    [Fact]
    public void Validate_AllocationAboveLimit_IsRejected() => Assert.Equal(
        ["Quota:Pools:vendor-daily:Tenants:e2e:Limit (20) must be ≥ Allocation (30)."],
        ValidateWith("Quota:Pools:vendor-daily:Tenants:e2e:Allocation", "30"));

    [Fact]
    public void Validate_GuaranteesAboveCapacity_IsRejected() => Assert.Equal(
        ["Quota:Pools:vendor-daily:Tenants: the Guaranteed of these tenants add up to 260, more than the 250 credits of the pool; lower them so that every guarantee can be honoured.",
         "Quota:Pools:vendor-daily:Tenants: the Allocation of these tenants add up to 260, more than the 250 credits of the pool; lower them."],
        ValidateWith(("Quota:Pools:vendor-daily:Tenants:prod:Allocation", "250"), ("Quota:Pools:vendor-daily:Tenants:e2e:Allocation", "10")));

    [Fact]
    public void Validate_PriorityNotPositive_IsRejected() => Assert.Equal(
        ["Quota:Pools:vendor-daily:Tenants:e2e:Priority must be a positive integer (1 is the highest), got 0."],
        ValidateWith("Quota:Pools:vendor-daily:Tenants:e2e:Priority", "0"));

    [Fact]
    public void Validate_NestedLimitAboveParent_IsRejected() => Assert.Equal(
        ["Quota:Pools:vendor-daily:Tenants:e2e:Tenants:alice:Limit must be ≤ the Limit of 'e2e' (20), got 21."],
        ValidateWith("Quota:Pools:vendor-daily:Tenants:e2e:Tenants:alice:Limit", "21"));

    [Fact]
    public void Validate_NameRepeatedAlongAPath_IsRejected() => Assert.Equal(
        ["Quota:Pools:vendor-daily:Tenants:e2e:Tenants:e2e: the name 'e2e' is already used higher on the same path; names must be unique along a path."],
        ValidateWith("Quota:Pools:vendor-daily:Tenants:e2e:Tenants:e2e:Limit", "5"));

    [Fact]
    public void Validate_NegativeOverageAndSoftLimit_AreRejected() => Assert.Equal(
        ["Quota:Pools:vendor-daily:Tenants:e2e:Overage must be between 0 and 10000000000000, got -1.", "Quota:Pools:vendor-daily:Tenants:e2e:SoftLimit must be ≥ 0, got -2."],
        ValidateWith(("Quota:Pools:vendor-daily:Tenants:e2e:Overage", "-1"), ("Quota:Pools:vendor-daily:Tenants:e2e:SoftLimit", "-2")));

    [Fact]
    public void Validate_TrustTenantHeaderWithNoTrustedNetworks_IsRefusedUnlessAnyNetworkIsAllowedExplicitly()
    {
        var values = ValidConfig();
        values.Remove("Quota:Identity:TrustedNetworks:0");
        values["Quota:Identity:TrustTenantHeader"] = "true";
        var refused = Validate(values);
        values["Quota:Identity:AllowTenantHeaderFromAnyNetwork"] = "true";

        Assert.Equal(
            ["Quota:Identity:TrustTenantHeader is true with no TrustedNetworks: anyone who can reach the proxy could name any tenant. List the networks of the callers you trust (CIDR), or set AllowTenantHeaderFromAnyNetwork to true if that is really meant."],
            refused);
        Assert.Empty(Validate(values));
    }

    [Fact]
    public void Validate_BadKnownProxyOrNetwork_IsRejected() => Assert.Equal(
        ["Quota:Identity:KnownProxies:0 'proxy.local' is not an IP address.", "Quota:Identity:KnownNetworks:0 '10.0.0.0/40' is not a network in CIDR form, such as 10.0.0.0/8."],
        ValidateWith(("Quota:Identity:KnownProxies:0", "proxy.local"), ("Quota:Identity:KnownNetworks:0", "10.0.0.0/40")));

    [Fact]
    public void Validate_ForwardCredentialNotABoolean_IsRejected() => Assert.Equal(
        ["ReverseProxy:Routes:health:Metadata:Quota.ForwardCredential must be true or false, got 'yes'."],
        ValidateWith("ReverseProxy:Routes:health:Metadata:Quota.ForwardCredential", "yes"));

    [Fact]
    public void Validate_BadTrustedNetwork_IsRejected() => Assert.Equal(
        ["Quota:Identity:TrustedNetworks:0 '10.0.0.0/33' is not a network in CIDR form, such as 10.0.0.0/8."],
        ValidateWith("Quota:Identity:TrustedNetworks:0", "10.0.0.0/33"));

    [Fact]
    public void Validate_RedisStoreWithoutConnectionString_IsRejected() => Assert.Equal(
        ["Quota:Store:Redis must be a Redis connection string (such as localhost:6379) when Quota:Store:Kind is Redis."],
        ValidateWith("Quota:Store:Kind", "Redis"));

    [Fact]
    public void Validate_StoreTimeoutOutOfRange_IsRejected() => Assert.Equal(
        ["Quota:Store:Timeout must be between 00:00:00.001 and 00:00:10, got 00:01:00."],
        ValidateWith("Quota:Store:Timeout", "00:01:00"));

    [Fact]
    public void Validate_CredentialFromUnsetEnvironmentVariable_IsRejected() => Assert.Equal(
        ["Quota:Upstreams:vendor:Credential:EnvironmentVariable names VENDOR_TOKEN, which is not set in the proxy's environment."],
        ValidateWith("Quota:Upstreams:vendor:Credential:EnvironmentVariable", "VENDOR_TOKEN"));

    [Fact]
    public void Validate_CredentialWithValueAndVariable_IsRejected() => Assert.Equal(
        ["Quota:Upstreams:vendor:Credential must set exactly one of Value and EnvironmentVariable."],
        ValidateWith("Quota:Upstreams:vendor:Credential:Value", "inline-secret"));

    [Fact]
    public void Validate_ManyErrors_ReportsEveryOneAtOnce()
    {
        var values = ValidConfig();
        values["ReverseProxy:Routes:quotes:Metadata:Quota.Pool"] = "nope";
        values["ReverseProxy:Routes:health:Metadata:Quota.Pool"] = "vendor-daily";
        values["ReverseProxy:Routes:health:Metadata:Quota.Cost"] = "0";
        values["Quota:Pools:vendor-daily:Window"] = "1y";
        values["Quota:Pools:vendor-daily:Tenants:e2e:Limit"] = "999";
        values["Quota:Identity:ApiKeys:0:Sha256"] = "abc";

        var errors = Validate(values);

        Assert.Equal(5, errors.Count);
        Assert.Contains(errors, e => e.StartsWith("Quota:Pools:vendor-daily:Window", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("Quota:Pools:vendor-daily:Tenants:e2e:Limit", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("ReverseProxy:Routes:quotes:Metadata:Quota.Pool", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("ReverseProxy:Routes:health:Metadata:Quota.Cost", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("Quota:Identity:ApiKeys:0:Sha256", StringComparison.Ordinal));
    }

    [Fact]
    public void Validate_RouteValueYarpCannotRead_IsReportedBesideTheRulesErrors()
    {
        var errors = ValidateWith(("ReverseProxy:Routes:quotes:Order", "first"), ("Quota:Pools:vendor-daily:Window", "1y"));

        Assert.Equal(2, errors.Count);
        Assert.Contains("Quota:Pools:vendor-daily:Window must be one of 1s, 1m, 1h, 1d, 1mo, got '1y'.", errors);
        Assert.Contains(errors, e => e.StartsWith("ReverseProxy: ", StringComparison.Ordinal) && e.Contains("first", StringComparison.Ordinal));
    }

    [Fact]
    public void Validate_AllowBoundedWithoutAJournalOrRedis_AndAnAllowanceAboveThePool_AreRejected() => Assert.Equal(
        [
            "Quota:Pools:vendor-daily:EmergencyAllowance must be between 0 and the pool's Limit (250), got 300.",
            "Quota:Store:OnUnavailable is AllowBounded but Quota:Store:Kind is not Redis; the in-process store is never unreachable, so use Reject.",
            "Quota:Store:JournalPath must name a file (on a disk that outlives the process) when Quota:Store:OnUnavailable is AllowBounded: emergency admissions are journaled there until the store has them.",
        ],
        ValidateWith(("Quota:Store:OnUnavailable", "AllowBounded"), ("Quota:Pools:vendor-daily:EmergencyAllowance", "300")));

    [Fact]
    public void Validate_ValuesOfTheWrongTypeBesideRuleErrors_ReportsEveryOneOnce()
    {
        var values = ValidConfig();
        // Of the wrong type: each is said once, and hides nothing else.
        values["Quota:Pools:vendor-daily:Tenants:prod:Limit"] = "lots";
        values["Quota:Store:Timeout"] = "soon";
        values["Quota:Headers:Legacy"] = "maybe";
        values["Quota:Pools:vendor-daily:Tenants:e2e:Priority"] = "first";
        // Against the rules.
        values["Quota:Pools:vendor-daily:Window"] = "1y";
        values["Quota:Pools:vendor-daily:TimeZone"] = "Mars/Olympus";
        values["Quota:Pools:vendor-daily:Tenants:e2e:Limit"] = "999";
        values["Quota:Pools:vendor-daily:Tenants:dev:Guaranteed"] = "5";
        values["Quota:Identity:ApiKeys:0:Sha256"] = "abc";
        values["ReverseProxy:Routes:quotes:Metadata:Quota.Pool"] = "nope";
        values["ReverseProxy:Routes:health:Metadata:Quota.Cost"] = "0";
        // One that YARP itself refuses.
        values["ReverseProxy:Routes:broken:ClusterId"] = "vendor";
        values["ReverseProxy:Routes:broken:Match:Path"] = "/broken/{";

        var errors = Validate(values);

        Assert.True(errors.Count == 12 && errors.Distinct().Count() == 12, string.Join("\n", errors));
        Assert.Contains("Quota:Pools:vendor-daily:Tenants:prod:Limit must be a whole number, got 'lots'.", errors);
        Assert.Contains("Quota:Store:Timeout must be a duration such as 00:00:30, got 'soon'.", errors);
        Assert.Contains("Quota:Headers:Legacy must be true or false, got 'maybe'.", errors);
        Assert.Contains("Quota:Pools:vendor-daily:Tenants:e2e:Priority must be a whole number, got 'first'.", errors);
        Assert.Contains("Quota:Pools:vendor-daily:Window must be one of 1s, 1m, 1h, 1d, 1mo, got '1y'.", errors);
        Assert.Contains(errors, e => e.StartsWith("Quota:Pools:vendor-daily:TimeZone 'Mars/Olympus' is not a known IANA time zone", StringComparison.Ordinal));
        Assert.Contains("Quota:Pools:vendor-daily:Tenants:e2e:Limit must be ≤ the pool's Limit (250), got 999.", errors);
        Assert.Contains(errors, e => e.StartsWith("Quota:Pools:vendor-daily:Tenants:dev:Guaranteed (5) must be ≤ Allocation (0)", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("Quota:Identity:ApiKeys:0:Sha256 must be the key's SHA-256", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("ReverseProxy:Routes:quotes:Metadata:Quota.Pool names unknown pool 'nope'", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("ReverseProxy:Routes:health:Metadata:Quota.Cost is set but Quota.Pool is not", StringComparison.Ordinal));
        Assert.Contains("ReverseProxy:Routes:broken: Invalid path '/broken/{' for route 'broken'.", errors);
    }

    [Theory]
    [InlineData("10")]
    [InlineData("10/w")]
    [InlineData("0/s")]
    [InlineData("ten/s")]
    [InlineData("2000000/s")]
    public void Validate_BadRateSyntax_IsRejected(string rate) => Assert.Equal(
        [$"Quota:Pools:vendor-daily:Tenants:prod:Rate must be <count>/<unit> with a positive integer count and a unit of s, m, h or d (such as 10/s or 600/m), got '{rate}'."],
        ValidateWith("Quota:Pools:vendor-daily:Tenants:prod:Rate", rate));

    [Fact]
    public void Validate_RateWithBurstCoveringTheLargestCost_HasNoErrors() => Assert.Empty(
        ValidateWith(("Quota:Pools:vendor-daily:Rate", "600/m"), ("Quota:Pools:vendor-daily:Burst", "5"), ("Quota:Pools:vendor-daily:Tenants:e2e:Rate", "5/s"), ("Quota:Pools:vendor-daily:Tenants:e2e:Burst", "5")));

    [Fact]
    public void Validate_BurstBelowTheLargestRouteCost_IsRejected() => Assert.Equal(
        ["Quota:Pools:vendor-daily:Burst (1) must be at least the largest route cost charged to this pool (5); otherwise such a request could never pass the rate."],
        ValidateWith("Quota:Pools:vendor-daily:Rate", "10/s"));

    [Fact]
    public void Validate_BurstAboveTheRatesCount_IsRejected() => Assert.Equal(
        ["Quota:Pools:vendor-daily:Tenants:e2e:Burst must be between 1 and the rate's count (10), got 11; a larger burst would let more than twice the rate through in one s."],
        ValidateWith(("Quota:Pools:vendor-daily:Tenants:e2e:Rate", "10/s"), ("Quota:Pools:vendor-daily:Tenants:e2e:Burst", "11")));

    [Fact]
    public void Validate_BurstWithoutRate_IsRejected() => Assert.Equal(
        ["Quota:Pools:vendor-daily:Tenants:e2e:Burst is set but Rate is not; set a Rate such as 10/s, or remove Burst."],
        ValidateWith("Quota:Pools:vendor-daily:Tenants:e2e:Burst", "5"));

    [Fact]
    public void Validate_PoolLimitBeyondExactCounters_IsRejected() => Assert.Equal(
        ["Quota:Pools:vendor-daily:Limit must be at most 10000000000000 credits per window, got 20000000000000."],
        ValidateWith("Quota:Pools:vendor-daily:Limit", "20000000000000"));

    [Fact]
    public void Validate_RouteOnSeveralPools_ChecksEachAndRefusesRepeats() => Assert.Equal(
        [
            "ReverseProxy:Routes:quotes:Metadata:Quota.Pool names unknown pool 'vendor-second'; known pools: vendor-daily.",
            "ReverseProxy:Routes:quotes:Metadata:Quota.Pool names pool 'vendor-daily' more than once; a route draws on each pool once.",
        ],
        ValidateWith("ReverseProxy:Routes:quotes:Metadata:Quota.Pool", "vendor-daily, vendor-second, vendor-daily"));

    [Fact]
    public void Validate_RouteOnTwoKnownPools_HasNoErrors() => Assert.Empty(ValidateWith(
        ("ReverseProxy:Routes:quotes:Metadata:Quota.Pool", "vendor-daily,vendor-second"),
        ("Quota:Pools:vendor-second:Limit", "10"),
        ("Quota:Pools:vendor-second:Window", "1s"),
        ("Quota:Pools:vendor-second:Tenants:prod:Limit", "10")));

    [Fact]
    public void Validate_NonPositiveMaxInFlight_IsRejected() => Assert.Equal(
        ["Quota:Pools:vendor-daily:Tenants:e2e:MaxInFlight must be a positive integer (requests in flight at once), got 0; remove it for no limit."],
        ValidateWith("Quota:Pools:vendor-daily:Tenants:e2e:MaxInFlight", "0"));

    [Fact]
    public void Validate_AMisspelledSetting_IsRejectedWithTheNearestRealName() => Assert.Equal(
        ["Quota:Pools:vendor-daily:Tenants:test:Limt is not a setting; did you mean Limit?"],
        ValidateWith("Quota:Pools:vendor-daily:Tenants:test:Limt", "5"));

    [Fact]
    public void Validate_ASettingTheProxyDoesNotHave_IsRejectedListingTheOnesItHas() => Assert.Equal(
        ["Quota:Store:Cluster is not a setting; the settings here are Breaker, JournalPath, KeyPrefix, Kind, LeaseTtl, OnUnavailable, Redis, ReplicaAcks, RetryAfterWhenUnavailable, Timeout, TlsCaCertificate."],
        ValidateWith("Quota:Store:Cluster", "true"));

    [Fact]
    public void Validate_AnUnknownQuotaKeyInRouteMetadata_IsRejected() => Assert.Equal(
        ["ReverseProxy:Routes:quotes:Metadata:Quota.Cots is not a quota setting; did you mean Quota.Cost?"],
        ValidateWith("ReverseProxy:Routes:quotes:Metadata:Quota.Cots", "5"));

    [Fact]
    public void Validate_AValueOfTheWrongType_IsRejectedByName_InsteadOfDroppingItsPool() => Assert.Contains(
        "Quota:Pools:vendor-daily:Limit must be a whole number, got 'ten'.",
        ValidateWith(("Quota:Pools:vendor-daily:Limit", "ten"), ("Quota:Store:Timeout", "soon"), ("Quota:Pools:vendor-daily:Tenants:prod:Mode", "Loud")));

    [Fact]
    public void Validate_ValuesOfTheWrongType_AreEachNamed() => Assert.Equal(
        [
            "Quota:Pools:vendor-daily:Tenants:prod:Mode must be one of Enforce, Shadow, got 'Loud'.",
            "Quota:Store:Timeout must be a duration such as 00:00:30, got 'soon'.",
        ],
        ValidateWith(("Quota:Store:Timeout", "soon"), ("Quota:Pools:vendor-daily:Tenants:prod:Mode", "Loud")).Where(e => e.Contains("must be", StringComparison.Ordinal) && e.Contains("got '", StringComparison.Ordinal)).Order());

    [Fact]
    public void Validate_AdminUrlWithoutAPort_IsRejected() => Assert.Equal(
        ["Quota:Admin:Url must be an http URL with a port and no path, such as http://0.0.0.0:9090, got 'http://0.0.0.0/admin'."],
        ValidateWith(("Quota:Admin:Url", "http://0.0.0.0/admin"), ("Quota:Admin:Keys:0:Name", "ops"), ("Quota:Admin:Keys:0:Sha256", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")));

    [Fact]
    public void Validate_AdminUrlWithoutKeys_IsRejected() => Assert.Equal(
        ["Quota:Admin:Keys must hold at least one key (Name and Sha256) when Quota:Admin:Url is set: the admin API never runs open."],
        ValidateWith("Quota:Admin:Url", "http://127.0.0.1:9090"));

    [Fact]
    public void Validate_AdminKeysWithoutANameTwiceOrNotAHash_AreRejected() => Assert.Equal(
        [
            "Quota:Admin:Keys:1:Name must name who holds the key (the audit trail records it), once per key; got 'ops'.",
            "Quota:Admin:Keys:1:Sha256 must be the key's SHA-256 as 64 hex characters (printf %s \"$KEY\" | sha256sum), got 6 characters.",
        ],
        ValidateWith(
            ("Quota:Admin:Url", "http://127.0.0.1:9090"),
            ("Quota:Admin:Keys:0:Name", "ops"),
            ("Quota:Admin:Keys:0:Sha256", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            ("Quota:Admin:Keys:1:Name", "ops"),
            ("Quota:Admin:Keys:1:Sha256", "secret")));

    [Fact]
    public void Validate_UsageRefreshIntervalOutOfRange_IsRejected() => Assert.Equal(
        ["Quota:Metrics:UsageRefreshInterval must be between 00:00:01 and 01:00:00, got 00:00:00."],
        ValidateWith("Quota:Metrics:UsageRefreshInterval", "00:00:00"));

    [Fact]
    public void Validate_MinUploadGracePeriodOfASecond_IsRejected_AsKestrelWouldFailEveryMeteredRequest() => Assert.Equal(
        ["Quota:Requests:MinUploadGracePeriod must be more than 00:00:01, got 00:00:01."],
        ValidateWith("Quota:Requests:MinUploadGracePeriod", "00:00:01"));

    [Fact]
    public void Validate_LeaseTtlOutOfRange_IsRejected() => Assert.Equal(
        ["Quota:Store:LeaseTtl must be between 00:00:01 and 1.00:00:00 (above the longest request the proxy forwards), got 00:00:00.5000000."],
        ValidateWith("Quota:Store:LeaseTtl", "00:00:00.5"));

    [Fact]
    public void Validate_RefundOnWithUnknownTokens_NamesEachOfThem() => Assert.Equal(
        [
            "ReverseProxy:Routes:quotes:Metadata:Quota.RefundOn has '6xx'; use status codes (502), classes (4xx, 5xx), transport or timeout, separated by commas.",
            "ReverseProxy:Routes:quotes:Metadata:Quota.RefundOn has 'errors'; use status codes (502), classes (4xx, 5xx), transport or timeout, separated by commas.",
        ],
        ValidateWith("ReverseProxy:Routes:quotes:Metadata:Quota.RefundOn", "5xx, 6xx, 429, errors, timeout, transport"));
}
