using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Prometheus;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using QuotaProxy.Enforcement.Admin;
using QuotaProxy.Enforcement.Configuration;
using QuotaProxy.Enforcement.Forwarding;
using QuotaProxy.Enforcement.Http;
using QuotaProxy.Enforcement.Identity;
using QuotaProxy.Enforcement.Observability;
using QuotaProxy.Enforcement.Pricing;
using QuotaProxy.Enforcement.Quotas;
using QuotaProxy.Enforcement.Redis;
using StackExchange.Redis;
using Yarp.ReverseProxy.Configuration;

namespace QuotaProxy.Enforcement;

public static class QuotaProxyServiceCollectionExtensions
{
    /// <summary>
    /// Adds YARP (routes and clusters from <c>ReverseProxy</c>) and the quota step (from <c>Quota</c>),
    /// validated at start: an invalid config throws <see cref="OptionsValidationException"/> listing every error.
    /// </summary>
    public static IServiceCollection AddQuotaProxy(this IServiceCollection services, IConfiguration configuration)
    {
        services.TryAddSingleton(TimeProvider.System);
        // One registry per host: /metrics shows this proxy's metrics, and tests read their own proxy's.
        services.TryAddSingleton(_ => Prometheus.Metrics.NewCustomRegistry());
        services.AddSingleton<QuotaMetrics>();
        services.AddHostedService<UsageGaugeRefresher>();
        services.AddOptions<QuotaOptions>().Bind(configuration.GetSection(QuotaOptions.SectionName)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<QuotaOptions>, QuotaOptionsValidator>();
        services.AddSingleton(sp => sp.GetRequiredService<IOptions<QuotaOptions>>().Value);
        // The model decisions use: the config plus the admin API's runtime overrides, loaded before serving.
        services.AddSingleton<IOverrideStore>(sp => sp.GetRequiredService<QuotaOptions>().Store.Kind == StoreKind.Redis
            ? new RedisOverrideStore(sp.GetRequiredService<IConnectionMultiplexer>(), sp.GetRequiredService<QuotaOptions>().Store.KeyPrefix)
            : new InProcessOverrideStore());
        // YARP reads its routes through this gate: an edit reaches it only once the whole config is valid.
        var gated = new GatedProxyConfiguration(configuration);
        services.AddSingleton(gated);
        services.AddSingleton(sp => new QuotaModelSource(
            sp.GetRequiredService<QuotaOptions>(), gated.Routes, sp.GetRequiredService<IOverrideStore>(), sp.GetRequiredService<ILogger<QuotaModelSource>>()));
        services.AddHostedService<OverrideSync>();
        services.AddHostedService(sp => new ConfigReloader(
            configuration, gated, sp.GetRequiredService<QuotaModelSource>(), sp.GetRequiredService<QuotaMetrics>(), sp.GetRequiredService<ILogger<ConfigReloader>>()));
        // The pools as configured: their names and keys, which overrides never change.
        services.AddSingleton(sp => sp.GetRequiredService<QuotaModelSource>().Current);
        services.AddSingleton<RouteQuotaCatalog>();
        services.AddSingleton(sp => new RedisKeys(sp.GetRequiredService<QuotaOptions>().Store.KeyPrefix));
        services.AddSingleton<IQuotaStore>(CreateStore);
        services.AddQuotaRedisConnection();
        var health = services.AddHealthChecks().AddCheck<StoreReadinessCheck>("store", tags: [ReadyTag]);
        if (!string.IsNullOrWhiteSpace(configuration[$"{QuotaOptions.SectionName}:Ledger:ConnectionString"]))
        {
            health.AddCheck<LedgerReadinessCheck>("ledger", tags: [ReadyTag]);
            // The ledger: usage events flow from Redis streams to PostgreSQL in the background.
            services.AddSingleton(sp => Npgsql.NpgsqlDataSource.Create(sp.GetRequiredService<QuotaOptions>().Ledger.ConnectionString!));
            services.AddSingleton(sp => sp.GetRequiredService<QuotaOptions>().Ledger);
            services.AddSingleton<Ledger.LedgerWriter>();
            services.AddSingleton<Ledger.LedgerQueries>();
            services.AddSingleton<Ledger.LedgerFlusher>();
            services.AddHostedService(sp => sp.GetRequiredService<Ledger.LedgerFlusher>());
        }

        services.AddSingleton(sp => new AdminAudit(
            sp.GetRequiredService<ILogger<AdminAudit>>(),
            sp.GetRequiredService<QuotaOptions>().Ledger.Enabled ? sp.GetRequiredService<Npgsql.NpgsqlDataSource>() : null));


        services.AddReverseProxy()
            .LoadFromConfig(gated.ReverseProxy)
            .AddTransforms(context =>
            {
                var options = context.Services.GetRequiredService<QuotaOptions>();
                UpstreamRequestTransforms.Apply(context, options, Environment.GetEnvironmentVariable);
            });
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

    /// <summary>Maps YARP with the quota step ahead of YARP's own pipeline steps.</summary>
    public static IEndpointConventionBuilder MapQuotaProxy(this WebApplication app)
    {
        var enabled = app.Services.GetRequiredService<QuotaOptions>().Enabled;
        return app.MapReverseProxy(pipeline =>
        {
            if (enabled)
            {
                pipeline.UseMiddleware<QuotaEnforcementMiddleware>();
            }

            pipeline.UseSessionAffinity();
            pipeline.UseLoadBalancing();
            pipeline.UsePassiveHealthChecks();
        });
    }

    private static IQuotaStore CreateStore(IServiceProvider services)
    {
        var options = services.GetRequiredService<QuotaOptions>();
        var timeProvider = services.GetRequiredService<TimeProvider>();
        if (options.Store.Kind == StoreKind.InProcess)
        {
            return new InProcessQuotaStore(timeProvider, options.Store.LeaseTtl);
        }

        var logger = services.GetRequiredService<ILogger<RedisQuotaStore>>();
        var connection = services.GetRequiredService<IConnectionMultiplexer>();
        QuotaLog.RedisStoreConfigured(logger, options.Store.Redis!, options.Store.Timeout.TotalMilliseconds, options.Store.KeyPrefix);
        return new RedisQuotaStore(
            connection,
            services.GetRequiredService<RedisKeys>(),
            options.Store.Timeout,
            timeProvider,
            logger,
            leaseTtl: options.Store.LeaseTtl,
            ledger: options.Ledger.Enabled,
            maxBacklog: options.Ledger.MaxBacklog);
    }

    /// <summary>One multiplexer per process, configured to fail fast rather than queue behind an outage.</summary>
    public static IServiceCollection AddQuotaRedisConnection(this IServiceCollection services)
    {
        services.TryAddSingleton<IConnectionMultiplexer>(sp =>
        {
            var store = sp.GetRequiredService<QuotaOptions>().Store;
            return ConnectionMultiplexer.Connect(RedisConnectionOptions.Create(store));
        });
        return services;
    }
}
