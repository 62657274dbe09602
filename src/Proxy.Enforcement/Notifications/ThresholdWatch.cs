using Microsoft.Extensions.Logging;
using QuotaProxy.Enforcement.Configuration;
using QuotaProxy.Enforcement.Observability;
using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Notifications;

/// <summary>
/// Finds the <c>Notify</c> thresholds a pool's nodes have crossed, in each read of its counters (the usage
/// refresh, every <c>Quota:Metrics:UsageRefreshInterval</c>), and hands each to <see cref="WebhookSender"/>
/// once: a crossing is claimed in the store under its id (pool, node, threshold, window), so of all the
/// replicas that see it, one sends it. Thresholds a jump of usage passes together are each notified.
/// </summary>
internal sealed class ThresholdWatch(LiveConfiguration live, INotificationClaims claims, WebhookSender sender, TimeProvider time, ILogger<ThresholdWatch> logger)
{
    /// <summary>Crossings this replica has claimed or seen claimed: not asked of the store again.</summary>
    private readonly HashSet<string> _known = new(StringComparer.Ordinal);

    public bool Enabled => sender.Enabled;

    public async Task ObserveAsync(PoolDefinition pool, PoolUsage usage, CancellationToken cancellationToken)
    {
        if (!sender.Enabled || !live.Options.Pools.TryGetValue(pool.Name, out var options))
        {
            return;
        }

        foreach (var (node, thresholds) in Watched(pool, options))
        {
            var used = usage.Used(node);
            var limit = node.IsRoot ? pool.Limit : node.EffectiveLimit;
            foreach (var threshold in thresholds.Where(t => limit > 0 && used * 100 >= t * limit))
            {
                var id = $"{pool.Name}/{(node.IsRoot ? "(pool)" : node.Path)}/{threshold}@{usage.Window.StartMs}";
                if (_known.Contains(id))
                {
                    continue;
                }

                try
                {
                    // Kept a day past the window: a replica that reads the window late still finds it claimed.
                    var lifetime = usage.Window.End - time.GetUtcNow() + TimeSpan.FromDays(1);
                    if (await claims.ClaimAsync(id, lifetime > TimeSpan.Zero ? lifetime : TimeSpan.FromDays(1), cancellationToken))
                    {
                        QuotaLog.ThresholdCrossed(logger, pool.Name, node.IsRoot ? "(pool)" : node.Path, threshold, used, limit);
                        sender.Enqueue(new ThresholdNotification(
                            id, ThresholdNotification.EventType, pool.Name, node.IsRoot ? null : node.Path, threshold, used, limit, usage.Window.Start, usage.Window.End, time.GetUtcNow()));
                    }

                    _known.Add(id);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // The store did not answer: the next read asks again.
                    QuotaLog.NotificationClaimFailed(logger, ex, id);
                }
            }
        }

        // Crossings of windows gone by are not seen again.
        _known.RemoveWhere(id => id.EndsWith($"@{usage.Window.StartMs}", StringComparison.Ordinal) is false && id.StartsWith(pool.Name + "/", StringComparison.Ordinal));
    }

    /// <summary>The pool's nodes that have thresholds, with them.</summary>
    private static IEnumerable<(QuotaNode Node, List<int> Thresholds)> Watched(PoolDefinition pool, PoolOptions options)
    {
        if (options.Notify is { Count: > 0 } poolThresholds)
        {
            yield return (pool.Root, poolThresholds);
        }

        foreach (var node in pool.Nodes.Values)
        {
            var tenants = options.Tenants;
            TenantOptions? tenant = null;
            foreach (var part in node.Path.Split('/'))
            {
                if (!tenants.TryGetValue(part, out tenant))
                {
                    break;
                }

                tenants = tenant.Tenants;
            }

            if (tenant?.Notify is { Count: > 0 } thresholds)
            {
                yield return (node, thresholds);
            }
        }
    }
}
