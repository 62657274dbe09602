using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.HttpOverrides;
using Prometheus;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using QuotaProxy.Enforcement.Admin;
using QuotaProxy.Enforcement.Monitoring;
using QuotaProxy.Enforcement.Configuration;
using QuotaProxy.Enforcement.Forwarding;
using QuotaProxy.Enforcement.Http;
using QuotaProxy.Enforcement.Observability;
using QuotaProxy.Enforcement.Pricing;
using QuotaProxy.Enforcement.Quotas;
using QuotaProxy.Enforcement.Redis;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement;

public static class QuotaProxyServiceCollectionExtensions
{
    /// <summary>
    /// Adds YARP (routes and clusters from <c>ReverseProxy</c>) and the quota step (from <c>Quota</c>). The
    /// configuration is validated here, once: an invalid one throws <see cref="OptionsValidationException"/>
    /// listing every error.
    /// </summary>
    public static IServiceCollection AddQuotaProxy(this IServiceCollection services, IConfiguration configuration)
    {
        var initial = CandidateConfiguration.Load(configuration, new Dictionary<string, TenantOverride>(), Environment.GetEnvironmentVariable, out var errors)
            ?? throw new OptionsValidationException(QuotaOptions.SectionName, typeof(QuotaOptions), errors);
        // What a restart alone changes (the store, the ledger) decides what is wired; everything else is read live.
        var startup = initial.Options;
        // A route's "Timeout" (YARP's own route setting) is enforced by ASP.NET Core's request timeouts.
        services.AddRequestTimeouts();

        services.TryAddSingleton(TimeProvider.System);
        // One registry per host: /metrics shows this proxy's metrics, and tests read their own proxy's.
        services.TryAddSingleton(_ =>
        {
            var registry = Prometheus.Metrics.NewCustomRegistry();
            // The process's CPU, memory, threads, handles and GC counts, read only when /metrics is scraped: free per request.
            Prometheus.DotNetStats.Register(registry);
            return registry;
        });
        services.AddSingleton<QuotaMetrics>();
        // The framework's own errors (404, 405, 400, 502, 500) as problem+json, like the proxy's.
        services.AddFrameworkProblems();
        services.AddSingleton<UsageForecast>();
        // Waiting for capacity (a pool's Wait), ordered by priority across replicas through short tickets in the store.
        services.AddSingleton<IWaitTickets>(sp => startup.Store.Kind == StoreKind.Redis
            ? new RedisWaitTickets(sp.GetRequiredService<IConnectionMultiplexer>(), startup.Store.KeyPrefix, sp.GetRequiredService<TimeProvider>())
            : new SingleReplicaWaitTickets());
        services.AddSingleton<CapacityWaiter>();
        // Threshold notifications: found in the usage reads, claimed once in the store, sent to the webhooks.
        services.AddSingleton<Notifications.INotificationClaims>(sp => startup.Store.Kind == StoreKind.Redis
            ? new Notifications.RedisNotificationClaims(sp.GetRequiredService<IConnectionMultiplexer>(), startup.Store.KeyPrefix)
            : new Notifications.InProcessNotificationClaims(sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton(sp => new Notifications.WebhookSender(
            startup.Notifications, Environment.GetEnvironmentVariable, sp.GetRequiredService<QuotaMetrics>(), sp.GetRequiredService<ILogger<Notifications.WebhookSender>>()));
        services.AddHostedService(sp => sp.GetRequiredService<Notifications.WebhookSender>());
        services.AddSingleton<Notifications.ThresholdWatch>();
        services.AddHostedService<UsageGaugeRefresher>();
        if (startup.Metrics.Platform)
        {
            services.AddHostedService<Monitoring.PlatformMetrics>();
        }

        services.AddSingleton(sp => new AccessLog(startup.AccessLog.Enabled, startup.AccessLog.Path, sp.GetRequiredService<QuotaMetrics>()));
        if (startup.AccessLog.Enabled)
        {
            services.AddHostedService(sp => sp.GetRequiredService<AccessLog>());
        }

        // Traces by OpenTelemetry, exported by OTLP, when an endpoint is configured.
        services.AddQuotaTracing(configuration);
        // The configuration in force: the file plus the admin API's runtime overrides, loaded before serving.
        services.AddSingleton<IOverrideStore>(sp => startup.Store.Kind == StoreKind.Redis
            ? new RedisOverrideStore(sp.GetRequiredService<IConnectionMultiplexer>(), startup.Store.KeyPrefix)
            : new InProcessOverrideStore());
        services.AddSingleton(sp => new LiveConfiguration(initial, sp.GetRequiredService<IOverrideStore>(), sp.GetRequiredService<ILogger<LiveConfiguration>>(), sp.GetRequiredService<TimeProvider>()));
        services.AddHostedService<OverrideSync>();
        // API keys issued at runtime (the admin API), beside the configured ones; every replica follows.
        services.AddSingleton<IApiKeyStore>(sp => startup.Store.Kind == StoreKind.Redis
            ? new RedisApiKeyStore(sp.GetRequiredService<IConnectionMultiplexer>(), startup.Store.KeyPrefix)
            : new InProcessApiKeyStore());
        services.AddSingleton<RuntimeApiKeys>();
        services.AddHostedService(sp => sp.GetRequiredService<RuntimeApiKeys>());
        // YARP reads its routes through this gate: an edit reaches it only once the whole config is valid.
        var gated = new GatedProxyConfiguration(configuration);
        services.AddSingleton(gated);
        services.AddHostedService(sp => new ConfigReloader(
            configuration, gated, sp.GetRequiredService<LiveConfiguration>(), sp.GetRequiredService<QuotaMetrics>(), sp.GetRequiredService<ILogger<ConfigReloader>>()));
        services.AddSingleton<RouteQuotaCatalog>();
        services.AddSingleton(new RedisKeys(startup.Store.KeyPrefix));
        if (startup.Store.Kind == StoreKind.Redis)
        {
            // Also by its own type: readiness reads its circuit.
            services.AddSingleton(sp => CreateRedisStore(sp, startup));
        }

        var allowBounded = startup.Store.Kind == StoreKind.Redis && startup.Store.OnUnavailable == OutagePolicy.AllowBounded;
        if (allowBounded)
        {
            services.AddSingleton(sp => new Outage.EmergencyJournal(
                startup.Store.JournalPath!, sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<QuotaMetrics>(), sp.GetRequiredService<ILogger<Outage.EmergencyJournal>>()));
            services.AddHostedService<Outage.JournalReplay>();
        }

        services.AddSingleton(sp =>
        {
            // Timed as the store answers (a lease's spends are not store calls); leases of pools that have them.
            var metered = new MeteredQuotaStore(
                startup.Store.Kind == StoreKind.Redis ? sp.GetRequiredService<RedisQuotaStore>() : new InProcessQuotaStore(sp.GetRequiredService<TimeProvider>(), startup.Store.LeaseTtl),
                sp.GetRequiredService<QuotaMetrics>());
            var leasing = new Leasing.LeasingQuotaStore(metered, sp.GetRequiredService<QuotaMetrics>(), sp.GetRequiredService<ILogger<Leasing.LeasingQuotaStore>>(), startup.Store.Timeout);
            if (startup.Store.Kind == StoreKind.Redis)
            {
                // A Redis that came back, or another master, may not hold the blocks' debits: no lease of before is spent on.
                var connection = sp.GetRequiredService<IConnectionMultiplexer>();
                connection.ConnectionRestored += (_, e) =>
                {
                    if (e.ConnectionType == ConnectionType.Interactive)
                    {
                        leasing.Forfeit();
                    }
                };
                connection.ConfigurationChanged += (_, _) => leasing.Forfeit();
            }

            return leasing;
        });
        services.AddSingleton<IQuotaStore>(sp =>
        {
            // The outage policy decides what the store's failures become.
            var leasing = sp.GetRequiredService<Leasing.LeasingQuotaStore>();
            return allowBounded ? new Outage.EmergencyQuotaStore(leasing, sp.GetRequiredService<Outage.EmergencyJournal>()) : leasing;
        });
        services.AddQuotaRedisConnection(startup.Store);
        if (startup.Store.Kind == StoreKind.Redis)
        {
            // A Redis that lost its data gets each window's counters back from the ledger before deciding again.
            services.AddSingleton(sp =>
            {
                var live = sp.GetRequiredService<LiveConfiguration>();
                return new StoreBaselines(
                    sp.GetRequiredService<IConnectionMultiplexer>(),
                    sp.GetRequiredService<RedisKeys>(),
                    sp.GetRequiredService<TimeProvider>(),
                    sp.GetRequiredService<ILogger<StoreBaselines>>(),
                    sp.GetService<IUsageHistory>(),
                    () => live.Model.Pools.Values,
                    sp.GetRequiredService<QuotaMetrics>());
            });
            // Before Kestrel listens: the hosted services start before the server does.
            services.AddHostedService<RedisWarmup>();
            // After a reconnection or a failover, the counters are held against the ledger before deciding on.
            services.AddSingleton<FailoverAudit>();
            services.AddHostedService(sp => sp.GetRequiredService<FailoverAudit>());
        }

        var health = services.AddHealthChecks().AddCheck<StoreReadinessCheck>("store", tags: [ReadyTag]);
        if (startup.Ledger.Enabled)
        {
            health.AddCheck<LedgerReadinessCheck>("ledger", tags: [ReadyTag]);
            // The ledger: usage events flow from Redis streams to PostgreSQL in the background.
            services.AddSingleton(_ => Npgsql.NpgsqlDataSource.Create(startup.Ledger.ConnectionString!));
            services.AddSingleton(_ => new Ledger.LedgerMigration(startup.Ledger.ConnectionString!));
            services.AddSingleton<Ledger.LedgerWriter>();
            services.AddSingleton<Ledger.LedgerQueries>();
            services.AddSingleton<IUsageHistory, Ledger.LedgerHistory>();
            services.AddSingleton<Ledger.LedgerFlusher>();
            services.AddHostedService(sp => sp.GetRequiredService<Ledger.LedgerFlusher>());
        }

        // Grants with an expiresAt end by themselves, in every replica.
        services.AddHostedService<OverrideExpiry>();
        // Registered after the store's and the ledger's services, so it stops before them: at shutdown every
        // lease is returned and its last spends recorded while Redis and the flusher are still there.
        services.AddHostedService<Leasing.LeaseKeeper>();
        services.AddSingleton(sp => new AdminAudit(
            sp.GetRequiredService<ILogger<AdminAudit>>(),
            startup.Ledger.Enabled ? sp.GetRequiredService<Npgsql.NpgsqlDataSource>() : null,
            sp.GetService<Ledger.LedgerMigration>()));

        services.AddReverseProxy()
            .LoadFromConfig(gated.ReverseProxy)
            .AddTransforms(context => UpstreamRequestTransforms.Apply(context, context.Services.GetRequiredService<LiveConfiguration>(), Environment.GetEnvironmentVariable));
        return services;
    }

    private const string ReadyTag = "ready";

    /// <summary>
    /// Maps what operators scrape and probe, on the proxy's own port: <c>/metrics</c> (Prometheus),
    /// <c>/healthz</c> (the process is alive: always 200) and <c>/readyz</c> (200 when the store, and the
    /// ledger if there is one, answer; else 503), the last two with a JSON body naming each check.
    /// </summary>
    public static WebApplication MapQuotaOperations(this WebApplication app)
    {
        app.MapMetrics("/metrics", app.Services.GetRequiredService<Prometheus.CollectorRegistry>());
        app.MapHealthChecks("/healthz", new HealthCheckOptions { Predicate = _ => false, ResponseWriter = HealthResponse.WriteAsync });
        app.MapHealthChecks("/readyz", new HealthCheckOptions { Predicate = check => check.Tags.Contains(ReadyTag), ResponseWriter = HealthResponse.WriteAsync });
        return app;
    }

    /// <summary>
    /// The caller's address from <c>X-Forwarded-For</c>, one hop, only when it comes from a proxy the operator
    /// named (<c>Quota:Identity:KnownProxies</c>, <c>KnownNetworks</c>); otherwise the socket's address stands,
    /// so that nobody can pass as a trusted network by writing a header.
    /// </summary>
    public static WebApplication UseQuotaForwardedHeaders(this WebApplication app)
    {
        var identity = app.Services.GetRequiredService<LiveConfiguration>().Options.Identity;
        if (identity.KnownProxies.Count == 0 && identity.KnownNetworks.Count == 0)
        {
            return app;
        }

        var options = new ForwardedHeadersOptions { ForwardedHeaders = ForwardedHeaders.XForwardedFor, ForwardLimit = 1 };
        options.KnownProxies.Clear();
        options.KnownIPNetworks.Clear();
        foreach (var proxy in identity.KnownProxies)
        {
            options.KnownProxies.Add(System.Net.IPAddress.Parse(proxy));
        }

        foreach (var network in identity.KnownNetworks)
        {
            options.KnownIPNetworks.Add(System.Net.IPNetwork.Parse(network));
        }

        app.UseForwardedHeaders(options);
        return app;
    }

    /// <summary><c>POST /quota/v1/decide</c>: what a request would get now, asked as its caller, nothing spent.</summary>
    public static IEndpointConventionBuilder MapQuotaDecide(this WebApplication app) =>
        app.MapPost(DecideEndpoint.Path, DecideEndpoint.HandleAsync);

    /// <summary>Maps YARP with the quota step ahead of YARP's own pipeline steps.</summary>
    public static IEndpointConventionBuilder MapQuotaProxy(this WebApplication app)
    {
        var enabled = app.Services.GetRequiredService<LiveConfiguration>().Options.Enabled;
        if (!enabled)
        {
            QuotaLog.QuotaDisabled(app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("QuotaProxy"));
        }

        return app.MapReverseProxy(pipeline =>
        {
            // Every proxied request, metered or not, is timed by route and status (and logged, if asked).
            pipeline.UseMiddleware<RequestTelemetryMiddleware>();
            if (enabled)
            {
                pipeline.UseMiddleware<QuotaEnforcementMiddleware>();
            }

            pipeline.Use(RouteTimeouts.AnswerGatewayTimeoutAsync);

            pipeline.UseSessionAffinity();
            pipeline.UseLoadBalancing();
            pipeline.UsePassiveHealthChecks();
        });
    }

    private static RedisQuotaStore CreateRedisStore(IServiceProvider services, QuotaOptions options)
    {
        var timeProvider = services.GetRequiredService<TimeProvider>();
        var logger = services.GetRequiredService<ILogger<RedisQuotaStore>>();
        QuotaLog.RedisStoreConfigured(logger, RedisConnectionOptions.WithoutSecrets(options.Store.Redis!), options.Store.Timeout.TotalMilliseconds, options.Store.KeyPrefix);
        var connection = services.GetRequiredService<IConnectionMultiplexer>();
        var keys = services.GetRequiredService<RedisKeys>();
        return new RedisQuotaStore(
            connection,
            keys,
            options.Store.Timeout,
            timeProvider,
            logger,
            leaseTtl: options.Store.LeaseTtl,
            ledger: options.Ledger.Enabled,
            maxBacklog: options.Ledger.MaxBacklog,
            breaker: options.Store.Breaker,
            metrics: services.GetRequiredService<QuotaMetrics>(),
            baselines: services.GetRequiredService<StoreBaselines>(),
            history: services.GetService<IUsageHistory>(),
            replicaAcks: options.Store.ReplicaAcks);
    }

    /// <summary>One multiplexer per process, configured to fail fast rather than queue behind an outage.</summary>
    private static void AddQuotaRedisConnection(this IServiceCollection services, StoreOptions store) =>
        services.TryAddSingleton<IConnectionMultiplexer>(_ => ConnectionMultiplexer.Connect(RedisConnectionOptions.Create(store)));
}
