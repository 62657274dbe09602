using System.Net;
using Microsoft.Extensions.Configuration;
using QuotaProxy.Enforcement.Identity;
using QuotaProxy.Enforcement.Pricing;
using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Configuration;

/// <summary>
/// Checks the <c>Quota</c> section and the quota metadata of every YARP route, and reports every error at
/// once, each naming its key path and what to fix, so that a bad config stops the start with a full list.
/// </summary>
internal static partial class QuotaOptionsValidator
{
    public const string RoutesSection = "ReverseProxy:Routes";

    /// <summary>
    /// The <c>Quota</c> section bound to options, after every key and value type is checked: an unknown key
    /// or a value of the wrong type goes to <paramref name="errors"/> and is left out of the binding, so the
    /// rules can still check everything else. Never throws.
    /// </summary>
    /// <param name="invalid">The paths of the values left out: a rule about one of them would only repeat its error.</param>
    public static QuotaOptions Read(IConfiguration configuration, List<string> errors, out IReadOnlySet<string> invalid)
    {
        var section = configuration.GetSection(QuotaOptions.SectionName);
        var unbindable = ConfigurationKeys.Validate(section, configuration.GetSection(RoutesSection), errors);
        invalid = unbindable;
        var bindable = new ConfigurationBuilder()
            .AddInMemoryCollection(section.AsEnumerable().Where(pair => !unbindable.Contains(pair.Key)))
            .Build();
        try
        {
            return bindable.GetSection(QuotaOptions.SectionName).Get<QuotaOptions>() ?? new QuotaOptions();
        }
        catch (InvalidOperationException ex)
        {
            // A shape the key walk does not foresee (a value where a section belongs): said, and nothing bound.
            errors.Add($"{QuotaOptions.SectionName}: {ex.Message}");
            return new QuotaOptions();
        }
    }

    public static List<string> Validate(QuotaOptions options, IConfigurationSection routes, Func<string, string?> environment)
    {
        var errors = new List<string>();
        ValidatePools(options, MaxRouteCosts(routes), errors);
        ValidateRoutes(options, routes, errors);
        ValidateIdentity(options, errors);
        ValidateStore(options.Store, errors);
        ValidateRequests(options.Requests, errors);
        if (options.Metrics.UsageRefreshInterval < TimeSpan.FromSeconds(1) || options.Metrics.UsageRefreshInterval > TimeSpan.FromHours(1))
        {
            errors.Add($"Quota:Metrics:UsageRefreshInterval must be between 00:00:01 and 01:00:00, got {options.Metrics.UsageRefreshInterval}.");
        }

        if (options.Decide.Pool is { } decidePool && !options.Pools.ContainsKey(decidePool))
        {
            errors.Add($"Quota:Decide:Pool names unknown pool '{decidePool}'; known pools: {string.Join(", ", options.Pools.Keys.Order(StringComparer.Ordinal))}.");
        }

        ValidateAdmin(options.Admin, errors);
        ValidateLedger(options, errors);
        ValidateUpstreams(options, environment, errors);
        ValidateNotifications(options.Notifications, environment, errors);
        return errors;
    }

    /// <summary>
    /// Pool, tenant and metered route names become Redis keys (a pool's is a Cluster hash tag, which a
    /// <c>}</c> would break), metric labels, ledger columns and HTTP headers: letters, digits, <c>.</c>,
    /// <c>_</c> and <c>-</c>, starting with a letter or digit, at most 64 characters.
    /// </summary>
    private static void CheckName(string path, string what, string name, List<string> errors)
    {
        if (!SafeName().IsMatch(name))
        {
            errors.Add($"{path}: the {what} name '{name}' may use only ASCII letters, digits, '.', '_' and '-', start with a letter or digit, and be at most 64 characters.");
        }
    }

    [System.Text.RegularExpressions.GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    private static partial System.Text.RegularExpressions.Regex SafeName();

    /// <summary>
    /// Counters are Lua numbers in the Redis store, written with 14 significant digits: a window's credits
    /// stay below this so they round-trip exactly.
    /// </summary>
    public const long MaxCredits = 10_000_000_000_000;

    private static void ValidatePools(QuotaOptions options, Dictionary<string, long> maxRouteCosts, List<string> errors)
    {
        foreach (var (poolName, pool) in options.Pools)
        {
            var path = $"Quota:Pools:{poolName}";
            CheckName(path, "pool", poolName, errors);
            var maxCost = maxRouteCosts.GetValueOrDefault(poolName, RouteQuota.DefaultCost);
            if (pool.Limit <= 0)
            {
                errors.Add($"{path}:Limit must be a positive integer (credits per window), got {pool.Limit}.");
            }
            else if (pool.Limit > MaxCredits)
            {
                errors.Add($"{path}:Limit must be at most {MaxCredits} credits per window, got {pool.Limit}.");
            }

            if (!QuotaWindow.TryParse(pool.Window, out _))
            {
                errors.Add($"{path}:Window must be one of 1s, 1m, 1h, 1d, 1mo, got '{pool.Window}'.");
            }

            if (!TimeZoneInfo.TryFindSystemTimeZoneById(pool.TimeZone, out _))
            {
                errors.Add($"{path}:TimeZone '{pool.TimeZone}' is not a known IANA time zone (such as UTC, Europe/Berlin, America/New_York).");
            }

            if (pool.SoftLimit is < 0)
            {
                errors.Add($"{path}:SoftLimit must be ≥ 0, got {pool.SoftLimit}.");
            }

            ValidateNotify(path, pool.Notify, errors);
            if (pool.Wait is { } wait)
            {
                if (wait.MaxWait <= TimeSpan.Zero || wait.MaxWait > TimeSpan.FromMinutes(1))
                {
                    errors.Add($"{path}:Wait:MaxWait must be more than 0 and at most 00:01:00 (a request holds its connection while it waits), got {wait.MaxWait}.");
                }

                if (wait.MaxQueued is < 1 or > 1_000_000)
                {
                    errors.Add($"{path}:Wait:MaxQueued must be between 1 and 1,000,000, got {wait.MaxQueued}.");
                }
            }

            if (pool.Lease is { } lease)
            {
                if (lease.MaxCredits < 1 || (pool.Limit > 0 && lease.MaxCredits > pool.Limit))
                {
                    errors.Add($"{path}:Lease:MaxCredits must be between 1 and the pool's Limit ({pool.Limit}), got {lease.MaxCredits}.");
                }

                if (lease.Ttl < TimeSpan.FromMilliseconds(10) || lease.Ttl > TimeSpan.FromMinutes(1))
                {
                    errors.Add($"{path}:Lease:Ttl must be between 00:00:00.010 and 00:01:00 (credits a lease holds are unavailable to other replicas until it ends), got {lease.Ttl}.");
                }
            }

            if (pool.MaxClosure <= TimeSpan.Zero || pool.MaxClosure > TimeSpan.FromDays(31))
            {
                errors.Add($"{path}:MaxClosure must be more than 0 and at most 31 days, got {pool.MaxClosure}.");
            }

            if (pool.EmergencyAllowance < 0 || (pool.Limit > 0 && pool.EmergencyAllowance > pool.Limit))
            {
                errors.Add($"{path}:EmergencyAllowance must be between 0 and the pool's Limit ({pool.Limit}), got {pool.EmergencyAllowance}.");
            }

            ValidateRate(path, pool.Rate, pool.Burst, maxCost, errors);
            ValidateMaxInFlight(path, pool.MaxInFlight, errors);
            ValidateChildren(path, "the pool", pool.Limit, pool.Tenants, [], maxCost, errors);
        }
    }

    /// <summary>One level of a tenant tree: each child's own fields, then the sums over the children.</summary>
    private static void ValidateChildren(string parentPath, string parentName, long capacity, Dictionary<string, TenantOptions> tenants, List<string> ancestors, long maxCost, List<string> errors)
    {
        long guaranteedSum = 0, allocationSum = 0;
        foreach (var (name, tenant) in tenants)
        {
            var path = $"{parentPath}:Tenants:{name}";
            CheckName(path, "tenant", name, errors);
            if (!IsValidNodeName(name))
            {
                errors.Add($"{path}: a tenant name may hold only letters, digits, '.', '_' and '-'.");
            }

            if (ancestors.Contains(name, StringComparer.Ordinal))
            {
                errors.Add($"{path}: the name '{name}' is already used higher on the same path; names must be unique along a path.");
            }

            var limit = tenant.Limit ?? capacity;
            if (tenant.Limit is { } explicitLimit)
            {
                if (explicitLimit <= 0)
                {
                    errors.Add($"{path}:Limit must be a positive integer, got {explicitLimit}; remove it to use {parentName}'s Limit.");
                }
                else if (capacity > 0 && explicitLimit > capacity)
                {
                    var whose = parentName == "the pool" ? "the pool's Limit" : $"the Limit of {parentName}";
                    errors.Add($"{path}:Limit must be ≤ {whose} ({capacity}), got {explicitLimit}.");
                }
            }

            var allocation = tenant.Allocation ?? 0;
            var guaranteed = tenant.Guaranteed ?? allocation;
            if (allocation < 0)
            {
                errors.Add($"{path}:Allocation must be ≥ 0, got {allocation}.");
            }

            if (guaranteed < 0)
            {
                errors.Add($"{path}:Guaranteed must be ≥ 0, got {guaranteed}.");
            }
            else if (guaranteed > allocation)
            {
                errors.Add($"{path}:Guaranteed ({guaranteed}) must be ≤ Allocation ({allocation}); raise Allocation or lower Guaranteed.");
            }

            if (allocation > limit && limit > 0)
            {
                errors.Add($"{path}:Limit ({limit}) must be ≥ Allocation ({allocation}).");
            }

            if (tenant.Priority is < 1)
            {
                errors.Add($"{path}:Priority must be a positive integer (1 is the highest), got {tenant.Priority}.");
            }

            if (tenant.Overage is < 0 or > MaxCredits)
            {
                errors.Add($"{path}:Overage must be between 0 and {MaxCredits}, got {tenant.Overage}.");
            }

            ValidateRate(path, tenant.Rate, tenant.Burst, maxCost, errors);
            ValidateMaxInFlight(path, tenant.MaxInFlight, errors);

            if (tenant.SoftLimit is < 0)
            {
                errors.Add($"{path}:SoftLimit must be ≥ 0, got {tenant.SoftLimit}.");
            }

            ValidateNotify(path, tenant.Notify, errors);

            guaranteedSum += Math.Max(0, guaranteed);
            allocationSum += Math.Max(0, allocation);
            ValidateChildren(path, $"'{name}'", limit, tenant.Tenants, [.. ancestors, name], maxCost, errors);
        }

        if (capacity > 0 && guaranteedSum > capacity)
        {
            errors.Add($"{parentPath}:Tenants: the Guaranteed of these tenants add up to {guaranteedSum}, more than the {capacity} credits of {parentName}; lower them so that every guarantee can be honoured.");
        }

        if (capacity > 0 && allocationSum > capacity)
        {
            errors.Add($"{parentPath}:Tenants: the Allocation of these tenants add up to {allocationSum}, more than the {capacity} credits of {parentName}; lower them.");
        }
    }

    private static void ValidateRate(string path, string? rate, long? burst, long maxCost, List<string> errors)
    {
        if (rate is null)
        {
            if (burst is not null)
            {
                errors.Add($"{path}:Burst is set but Rate is not; set a Rate such as 10/s, or remove Burst.");
            }

            return;
        }

        if (!QuotaRate.TryParse(rate, 1, out var parsed))
        {
            errors.Add($"{path}:Rate must be <count>/<unit> with a positive integer count and a unit of s, m, h or d (such as 10/s or 600/m), got '{rate}'.");
            return;
        }

        if (burst is { } b && (b < 1 || b > parsed!.Count))
        {
            errors.Add($"{path}:Burst must be between 1 and the rate's count ({parsed!.Count}), got {b}; a larger burst would let more than twice the rate through in one {rate[(rate.IndexOf('/') + 1)..]}.");
        }
        else if ((burst ?? 1) < maxCost)
        {
            errors.Add($"{path}:Burst ({burst ?? 1}) must be at least the largest route cost charged to this pool ({maxCost}); otherwise such a request could never pass the rate.");
        }
    }

    private static void ValidateMaxInFlight(string path, long? maxInFlight, List<string> errors)
    {
        if (maxInFlight is < 1)
        {
            errors.Add($"{path}:MaxInFlight must be a positive integer (requests in flight at once), got {maxInFlight}; remove it for no limit.");
        }
    }

    /// <summary>The largest valid Quota.Cost of the routes charged to each pool.</summary>
    private static Dictionary<string, long> MaxRouteCosts(IConfigurationSection routes)
    {
        var costs = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var route in routes.GetChildren())
        {
            var metadata = route.GetSection("Metadata");
            if (RouteQuota.TryParseCost(metadata[RouteQuota.CostKey], out var cost))
            {
                foreach (var pool in RouteQuota.SplitPools(metadata[RouteQuota.PoolKey]))
                {
                    costs[pool] = Math.Max(cost, costs.GetValueOrDefault(pool, RouteQuota.DefaultCost));
                }
            }
        }

        return costs;
    }

    private static bool IsValidNodeName(string name) =>
        name.Length > 0 && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-');

    /// <summary>Every tenant path (<c>prod</c>, <c>acme/search</c>) of every pool.</summary>
    private static HashSet<string> TenantPaths(QuotaOptions options)
    {
        var paths = new HashSet<string>(StringComparer.Ordinal);
        foreach (var pool in options.Pools.Values)
        {
            Add("", pool.Tenants);
        }

        return paths;

        void Add(string prefix, Dictionary<string, TenantOptions> tenants)
        {
            foreach (var (name, tenant) in tenants)
            {
                var path = prefix.Length == 0 ? name : $"{prefix}/{name}";
                paths.Add(path);
                Add(path, tenant.Tenants);
            }
        }
    }

    private static void ValidateRoutes(QuotaOptions options, IConfigurationSection routes, List<string> errors)
    {
        foreach (var route in routes.GetChildren())
        {
            var metadata = route.GetSection("Metadata");
            var path = $"{RoutesSection}:{route.Key}:Metadata";
            var pool = metadata[RouteQuota.PoolKey];
            var cost = metadata[RouteQuota.CostKey];
            if (metadata[RouteQuota.ForwardCredentialKey] is { } forward && !bool.TryParse(forward, out _))
            {
                errors.Add($"{path}:{RouteQuota.ForwardCredentialKey} must be true or false, got '{forward}'.");
            }

            if (pool is null)
            {
                if (cost is not null)
                {
                    errors.Add($"{path}:{RouteQuota.CostKey} is set but {RouteQuota.PoolKey} is not; name the pool the cost is charged to.");
                }

                continue;
            }

            CheckName($"{RoutesSection}:{route.Key}", "metered route", route.Key, errors);
            var names = RouteQuota.SplitPools(pool);
            if (names.Count == 0)
            {
                errors.Add($"{path}:{RouteQuota.PoolKey} is empty; name a pool, or several separated by commas, or remove it.");
            }

            foreach (var name in names.Where(n => !options.Pools.ContainsKey(n)))
            {
                var known = options.Pools.Count == 0 ? "none are configured" : "known pools: " + string.Join(", ", options.Pools.Keys.Order(StringComparer.Ordinal));
                errors.Add($"{path}:{RouteQuota.PoolKey} names unknown pool '{name}'; {known}.");
            }

            foreach (var repeated in names.GroupBy(n => n, StringComparer.Ordinal).Where(g => g.Count() > 1))
            {
                errors.Add($"{path}:{RouteQuota.PoolKey} names pool '{repeated.Key}' more than once; a route draws on each pool once.");
            }

            var costHeader = metadata[RouteQuota.CostHeaderKey];
            var maxCost = metadata[RouteQuota.MaxCostKey];
            if (costHeader is null)
            {
                if (!RouteQuota.TryParseCost(cost, out _))
                {
                    errors.Add($"{path}:{RouteQuota.CostKey} must be a positive integer, got '{cost}'.");
                }

                if (maxCost is not null)
                {
                    errors.Add($"{path}:{RouteQuota.MaxCostKey} is set but {RouteQuota.CostHeaderKey} is not; a fixed cost needs no maximum.");
                }
            }
            else if (maxCost is null || !RouteQuota.TryParseCost(maxCost, out _))
            {
                errors.Add($"{path}:{RouteQuota.CostHeaderKey} needs {RouteQuota.MaxCostKey}, the most one request may cost (a positive integer), got '{maxCost}': it is reserved up front, and a header above it is capped.");
            }
            else if (cost is not null)
            {
                errors.Add($"{path}:{RouteQuota.CostKey} is set with {RouteQuota.CostHeaderKey}; the reservation is {RouteQuota.MaxCostKey}, so remove {RouteQuota.CostKey}.");
            }

            if (!RouteQuota.TryParseReplays(metadata[RouteQuota.VendorIdempotentKey], metadata[RouteQuota.MaxReplaysKey], out var replays))
            {
                errors.Add($"{path}:{RouteQuota.VendorIdempotentKey} must be true or false, and {RouteQuota.MaxReplaysKey} an integer from 1 to {RouteQuota.MaxReplaysLimit}; got '{metadata[RouteQuota.VendorIdempotentKey]}' and '{metadata[RouteQuota.MaxReplaysKey]}'.");
            }
            else if (replays == 0 && metadata[RouteQuota.MaxReplaysKey] is not null)
            {
                errors.Add($"{path}:{RouteQuota.MaxReplaysKey} is set but {RouteQuota.VendorIdempotentKey} is not true; replays are free only where the vendor honours the key.");
            }

            RefundPolicy.Parse(metadata[RefundPolicy.Key], out var invalid);
            foreach (var token in invalid)
            {
                errors.Add($"{path}:{RefundPolicy.Key} has '{token}'; use status codes (502), classes (4xx, 5xx), transport or timeout, separated by commas.");
            }
        }
    }

    private static void ValidateIdentity(QuotaOptions options, List<string> errors)
    {
        var identity = options.Identity;
        if (string.IsNullOrWhiteSpace(identity.ApiKeyHeader))
        {
            errors.Add("Quota:Identity:ApiKeyHeader must name a header, such as X-Api-Key.");
        }

        if (string.IsNullOrWhiteSpace(identity.TenantHeader))
        {
            errors.Add("Quota:Identity:TenantHeader must name a header, such as X-Environment.");
        }

        var tenants = TenantPaths(options);
        var firstIndexByHash = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < identity.ApiKeys.Count; i++)
        {
            var key = identity.ApiKeys[i];
            var path = $"Quota:Identity:ApiKeys:{i}";
            if (!ApiKeyHash.IsWellFormed(key.Sha256))
            {
                // Never echo the value: someone may have pasted the raw key instead of its hash.
                errors.Add($"{path}:Sha256 must be the key's SHA-256 as 64 hex characters (printf %s \"$KEY\" | sha256sum), got {key.Sha256.Length} characters.");
            }
            else if (firstIndexByHash.TryGetValue(key.Sha256, out var first))
            {
                errors.Add($"{path}:Sha256 is the same key as Quota:Identity:ApiKeys:{first}:Sha256; a key maps to exactly one tenant, remove one of them.");
            }
            else
            {
                firstIndexByHash.Add(key.Sha256, i);
            }

            if (string.IsNullOrWhiteSpace(key.Tenant))
            {
                errors.Add($"{path}:Tenant must name the tenant the key belongs to.");
            }
            else if (!tenants.Contains(key.Tenant))
            {
                errors.Add($"{path}:Tenant '{key.Tenant}' is not a tenant of any pool; add it under Quota:Pools:<pool>:Tenants (a nested tenant is named by its path, such as acme/search).");
            }
        }

        for (var i = 0; i < identity.TrustedNetworks.Count; i++)
        {
            if (!IPNetwork.TryParse(identity.TrustedNetworks[i], out _))
            {
                errors.Add($"Quota:Identity:TrustedNetworks:{i} '{identity.TrustedNetworks[i]}' is not a network in CIDR form, such as 10.0.0.0/8.");
            }
        }

        if (identity.KeyPepper is { Length: > 0 and < 16 })
        {
            errors.Add($"Quota:Identity:KeyPepper must be at least 16 characters (32 random bytes, base64, is a good one), got {identity.KeyPepper.Length}.");
        }

        if (identity.TrustTenantHeader && identity.TrustedNetworks.Count == 0 && !identity.AllowTenantHeaderFromAnyNetwork)
        {
            errors.Add("Quota:Identity:TrustTenantHeader is true with no TrustedNetworks: anyone who can reach the proxy could name any tenant. List the networks of the callers you trust (CIDR), or set AllowTenantHeaderFromAnyNetwork to true if that is really meant.");
        }

        for (var i = 0; i < identity.KnownProxies.Count; i++)
        {
            if (!System.Net.IPAddress.TryParse(identity.KnownProxies[i], out _))
            {
                errors.Add($"Quota:Identity:KnownProxies:{i} '{identity.KnownProxies[i]}' is not an IP address.");
            }
        }

        for (var i = 0; i < identity.KnownNetworks.Count; i++)
        {
            if (!IPNetwork.TryParse(identity.KnownNetworks[i], out _))
            {
                errors.Add($"Quota:Identity:KnownNetworks:{i} '{identity.KnownNetworks[i]}' is not a network in CIDR form, such as 10.0.0.0/8.");
            }
        }
    }

    private static void ValidateRequests(RequestOptions requests, List<string> errors)
    {
        if (requests.MaxBodyBytes <= 0)
        {
            errors.Add($"Quota:Requests:MaxBodyBytes must be a positive number of bytes, got {requests.MaxBodyBytes}.");
        }

        if (requests.MinUploadBytesPerSecond <= 0)
        {
            errors.Add($"Quota:Requests:MinUploadBytesPerSecond must be more than 0, got {requests.MinUploadBytesPerSecond}.");
        }

        if (requests.MinUploadGracePeriod <= TimeSpan.FromSeconds(1))
        {
            // Kestrel's own bound (MinDataRate): a second or less fails every metered request with a 500.
            errors.Add($"Quota:Requests:MinUploadGracePeriod must be more than 00:00:01, got {requests.MinUploadGracePeriod}.");
        }
    }

    private static void ValidateStore(StoreOptions store, List<string> errors)
    {
        if (store.TlsCaCertificate is { Length: > 0 } authority && !File.Exists(authority))
        {
            errors.Add($"Quota:Store:TlsCaCertificate '{authority}' is not a file; give the PEM file of the CA that signed Redis's certificate.");
        }

        if (store.Kind == StoreKind.Redis && string.IsNullOrWhiteSpace(store.Redis))
        {
            errors.Add("Quota:Store:Redis must be a Redis connection string (such as localhost:6379) when Quota:Store:Kind is Redis.");
        }

        if (store.Timeout <= TimeSpan.Zero || store.Timeout > TimeSpan.FromSeconds(10))
        {
            errors.Add($"Quota:Store:Timeout must be between 00:00:00.001 and 00:00:10, got {store.Timeout}.");
        }

        if (store.LeaseTtl < TimeSpan.FromSeconds(1) || store.LeaseTtl > TimeSpan.FromDays(1))
        {
            errors.Add($"Quota:Store:LeaseTtl must be between 00:00:01 and 1.00:00:00 (above the longest request the proxy forwards), got {store.LeaseTtl}.");
        }

        if (store.RetryAfterWhenUnavailable < TimeSpan.FromSeconds(1))
        {
            errors.Add($"Quota:Store:RetryAfterWhenUnavailable must be at least 00:00:01, got {store.RetryAfterWhenUnavailable}.");
        }

        if (store.OnUnavailable == OutagePolicy.AllowBounded)
        {
            if (store.Kind != StoreKind.Redis)
            {
                errors.Add("Quota:Store:OnUnavailable is AllowBounded but Quota:Store:Kind is not Redis; the in-process store is never unreachable, so use Reject.");
            }

            if (string.IsNullOrWhiteSpace(store.JournalPath))
            {
                errors.Add("Quota:Store:JournalPath must name a file (on a disk that outlives the process) when Quota:Store:OnUnavailable is AllowBounded: emergency admissions are journaled there until the store has them.");
            }
        }

        if (store.ReplicaAcks is < 0 or > 5)
        {
            errors.Add($"Quota:Store:ReplicaAcks must be between 0 and 5 (replicas that must hold a debit before the vendor is called), got {store.ReplicaAcks}.");
        }

        var breaker = store.Breaker;
        if (breaker.FailureRatio is <= 0 or > 1)
        {
            errors.Add($"Quota:Store:Breaker:FailureRatio must be above 0 and at most 1, got {breaker.FailureRatio}.");
        }

        if (breaker.MinimumThroughput < 2)
        {
            errors.Add($"Quota:Store:Breaker:MinimumThroughput must be at least 2 calls, got {breaker.MinimumThroughput}.");
        }

        if (breaker.SamplingDuration < TimeSpan.FromMilliseconds(500) || breaker.SamplingDuration > TimeSpan.FromDays(1))
        {
            errors.Add($"Quota:Store:Breaker:SamplingDuration must be between 00:00:00.5 and 1.00:00:00, got {breaker.SamplingDuration}.");
        }

        if (breaker.BreakDuration < TimeSpan.FromMilliseconds(500) || breaker.BreakDuration > TimeSpan.FromDays(1))
        {
            errors.Add($"Quota:Store:Breaker:BreakDuration must be between 00:00:00.5 and 1.00:00:00, got {breaker.BreakDuration}.");
        }

        if (string.IsNullOrEmpty(store.KeyPrefix) || store.KeyPrefix.Contains('{') || store.KeyPrefix.Contains('}'))
        {
            errors.Add($"Quota:Store:KeyPrefix must be non-empty and free of braces (they would break the hash tag), got '{store.KeyPrefix}'.");
        }
    }

    private static void ValidateAdmin(AdminOptions admin, List<string> errors)
    {
        if (admin.Url is null)
        {
            return;
        }

        if (!Uri.TryCreate(admin.Url, UriKind.Absolute, out var url) || url.Scheme != Uri.UriSchemeHttp || url.IsDefaultPort || url.AbsolutePath != "/")
        {
            errors.Add($"Quota:Admin:Url must be an http URL with a port and no path, such as http://0.0.0.0:9090, got '{admin.Url}'.");
        }

        if (admin.Keys.Count == 0)
        {
            errors.Add("Quota:Admin:Keys must hold at least one key (Name and Sha256) when Quota:Admin:Url is set: the admin API never runs open.");
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < admin.Keys.Count; i++)
        {
            var key = admin.Keys[i];
            if (string.IsNullOrWhiteSpace(key.Name) || !names.Add(key.Name))
            {
                errors.Add($"Quota:Admin:Keys:{i}:Name must name who holds the key (the audit trail records it), once per key; got '{key.Name}'.");
            }

            if (key.Sha256.Length != 64 || !key.Sha256.All(char.IsAsciiHexDigit))
            {
                errors.Add($"Quota:Admin:Keys:{i}:Sha256 must be the key's SHA-256 as 64 hex characters (printf %s \"$KEY\" | sha256sum), got {key.Sha256.Length} characters.");
            }
        }
    }

    private static void ValidateLedger(QuotaOptions options, List<string> errors)
    {
        var ledger = options.Ledger;
        if (!ledger.Enabled)
        {
            return;
        }

        if (options.Store.Kind != StoreKind.Redis)
        {
            errors.Add("Quota:Ledger:ConnectionString is set but Quota:Store:Kind is not Redis; the ledger's usage events are written by the Redis store, so set Kind to Redis or remove the ledger.");
        }

        try
        {
            _ = new Npgsql.NpgsqlConnectionStringBuilder(ledger.ConnectionString);
        }
        catch (ArgumentException ex)
        {
            errors.Add($"Quota:Ledger:ConnectionString is not an Npgsql connection string (such as Host=db;Username=quotaproxy;Database=quotaproxy): {ex.Message}");
        }

        if (ledger.MaxBacklog < 1)
        {
            errors.Add($"Quota:Ledger:MaxBacklog must be at least 1 event, got {ledger.MaxBacklog}.");
        }

        if (ledger.BatchSize is < 1 or > 10_000)
        {
            errors.Add($"Quota:Ledger:BatchSize must be between 1 and 10000, got {ledger.BatchSize}.");
        }
    }

    private static void ValidateNotify(string path, List<int>? thresholds, List<string> errors)
    {
        if (thresholds is null)
        {
            return;
        }

        if (thresholds.Any(t => t is < 1 or > 100) || thresholds.Distinct().Count() != thresholds.Count)
        {
            errors.Add($"{path}:Notify must list distinct percentages from 1 to 100, got [{string.Join(", ", thresholds)}].");
        }
    }

    private static void ValidateNotifications(NotificationOptions notifications, Func<string, string?> environment, List<string> errors)
    {
        for (var i = 0; i < notifications.Webhooks.Count; i++)
        {
            var webhook = notifications.Webhooks[i];
            var path = $"Quota:Notifications:Webhooks:{i}";
            if (string.IsNullOrWhiteSpace(webhook.Name))
            {
                errors.Add($"{path}:Name is required (metrics and logs name the webhook by it).");
            }

            if (!Uri.TryCreate(webhook.Url, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
            {
                errors.Add($"{path}:Url must be an absolute http or https URL, got '{webhook.Url}'.");
            }

            if (string.IsNullOrWhiteSpace(webhook.SecretEnvironmentVariable))
            {
                errors.Add($"{path}:SecretEnvironmentVariable must name the environment variable holding the signing key.");
            }
            else if (string.IsNullOrEmpty(environment(webhook.SecretEnvironmentVariable)))
            {
                errors.Add($"{path}:SecretEnvironmentVariable names {webhook.SecretEnvironmentVariable}, which is not set in the proxy's environment.");
            }
        }

        if (notifications.Webhooks.Select(w => w.Name).Distinct(StringComparer.Ordinal).Count() != notifications.Webhooks.Count)
        {
            errors.Add("Quota:Notifications:Webhooks must have distinct names.");
        }

        if (notifications.MaxAttempts is < 1 or > 100)
        {
            errors.Add($"Quota:Notifications:MaxAttempts must be between 1 and 100, got {notifications.MaxAttempts}.");
        }

        if (notifications.FirstRetryDelay < TimeSpan.FromMilliseconds(10) || notifications.FirstRetryDelay > TimeSpan.FromMinutes(10))
        {
            errors.Add($"Quota:Notifications:FirstRetryDelay must be between 00:00:00.010 and 00:10:00, got {notifications.FirstRetryDelay}.");
        }
    }

    private static void ValidateUpstreams(QuotaOptions options, Func<string, string?> environment, List<string> errors)
    {
        foreach (var (clusterId, upstream) in options.Upstreams)
        {
            if (upstream.Credential is not { } credential)
            {
                continue;
            }

            var path = $"Quota:Upstreams:{clusterId}:Credential";
            if (string.IsNullOrWhiteSpace(credential.Header))
            {
                errors.Add($"{path}:Header must name the header that carries the vendor credential, such as Authorization.");
            }

            var hasValue = !string.IsNullOrEmpty(credential.Value);
            var hasVariable = !string.IsNullOrEmpty(credential.EnvironmentVariable);
            if (hasValue == hasVariable)
            {
                errors.Add($"{path} must set exactly one of Value and EnvironmentVariable.");
            }
            else if (hasVariable && string.IsNullOrEmpty(environment(credential.EnvironmentVariable!)))
            {
                errors.Add($"{path}:EnvironmentVariable names {credential.EnvironmentVariable}, which is not set in the proxy's environment.");
            }
        }
    }
}
