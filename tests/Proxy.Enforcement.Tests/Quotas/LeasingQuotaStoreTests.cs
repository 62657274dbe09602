using Microsoft.Extensions.Logging.Abstractions;
using QuotaProxy.Enforcement.Configuration;
using QuotaProxy.Enforcement.Leasing;
using QuotaProxy.Enforcement.Observability;
using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Tests.Quotas;

/// <summary>
/// Credit leases over the in-process store (the reference model): blocks are debits through the whole
/// tree, so every limit, guarantee and priority holds; their sizes follow the headroom down to one
/// request's cost; and once they are returned the counters hold exactly what was spent.
/// </summary>
public sealed class LeasingQuotaStoreTests
{
    /// <summary>The in-process store, with every debit it decides written down (the sizes blocks are taken in).</summary>
    private sealed class Recorded(IQuotaStore store) : QuotaStoreDecorator(store)
    {
        public List<(string Tenant, long Cost, bool Admitted)> Debits { get; } = [];

        public override async ValueTask<RouteDecision> DebitAsync(IReadOnlyList<QuotaDebit> debits, UsageContext? usage, CancellationToken cancellationToken)
        {
            var decision = await Inner.DebitAsync(debits, usage, cancellationToken);
            lock (Debits)
            {
                Debits.Add((debits[0].Tenant.Path, debits[0].Cost, decision.Admitted));
            }

            return decision;
        }
    }

    private static (LeasingQuotaStore Leasing, Recorded Store) Create()
    {
        var store = new Recorded(new InProcessQuotaStore(TimeProvider.System));
        return (new LeasingQuotaStore(store, new QuotaMetrics(Prometheus.Metrics.NewCustomRegistry()), NullLogger<LeasingQuotaStore>.Instance, TimeSpan.FromMilliseconds(50)), store);
    }

    private static PoolDefinition WithLease(PoolOptions options, long maxCredits) =>
        TestPools.Create("leased", options with { Lease = new LeaseOptions { MaxCredits = maxCredits, Ttl = TimeSpan.FromMinutes(1) } });

    [Fact]
    public async Task BlockSizes_FollowTheHeadroom_AndShrinkToOneRequestNearTheLimit_AndThePoolIsSpentExactly()
    {
        var pool = WithLease(new PoolOptions { Limit = 1000, Window = "1d", Tenants = { ["prod"] = new TenantOptions() } }, maxCredits: 100);
        var (leasing, store) = Create();
        var admitted = 0;
        while ((await leasing.DebitAsync([pool.Debit("prod", 1)], null, CancellationToken.None)).Admitted)
        {
            admitted++;
        }

        Assert.Equal(1000, admitted);
        var sizes = store.Debits.Where(d => d.Admitted).Select(d => d.Cost).ToList();
        // The first is decided alone (no headroom known yet); then blocks of at most a quarter of the headroom,
        // and at most MaxCredits; the last ones one credit each.
        Assert.Equal(1, sizes[0]);
        Assert.Equal(100, sizes[1]);
        Assert.Equal(1000, sizes.Sum());
        Assert.All(sizes.Skip(1).Zip(sizes.Skip(2)), pair => Assert.True(pair.Second <= pair.First, $"a block of {pair.Second} after one of {pair.First}"));
        Assert.Equal(1, sizes[^1]);
        Assert.True(sizes.Count < 100, $"{sizes.Count} store decisions for 1000 requests");
        Assert.Equal(1000, (await store.ReadUsageAsync(pool, CancellationToken.None)).Used(pool.Root));
    }

    [Fact]
    public async Task TheWorkedExampleUnderLeases_HoldsEveryLimitAndGuarantee_AndReturnedBlocksLeaveTheCountersAtWhatWasSpent()
    {
        var pool = WithLease(TestPools.WorkedExampleOptions(), maxCredits: 20);
        var (leasing, store) = Create();
        var random = new Random(17);
        var spent = new Dictionary<string, long> { ["prod"] = 0, ["test"] = 0, ["dev"] = 0, ["e2e"] = 0 };

        // test, dev and e2e ask for all they can get first; prod comes later and must still find its 180.
        foreach (var tenant in new[] { "test", "dev", "e2e" })
        {
            for (var i = 0; i < 100; i++)
            {
                var cost = random.Next(1, 4);
                if ((await leasing.DebitAsync([pool.Debit(tenant, cost)], null, CancellationToken.None)).Admitted)
                {
                    spent[tenant] += cost;
                }
            }
        }

        for (var i = 0; i < 300; i++)
        {
            if ((await leasing.DebitAsync([pool.Debit("prod", 1)], null, CancellationToken.None)).Admitted)
            {
                spent["prod"]++;
            }
        }

        Assert.True(spent["test"] <= 60 && spent["dev"] <= 60 && spent["e2e"] <= 20, string.Join(", ", spent));
        Assert.True(spent["test"] + spent["dev"] + spent["e2e"] <= 70, $"the others left prod its guarantee: {string.Join(", ", spent)}");
        Assert.True(spent["prod"] >= 180, $"prod got its guarantee: {spent["prod"]}");
        Assert.True(spent.Values.Sum() <= 250);
        Assert.Contains(store.Debits, d => d.Admitted && d.Cost > 3); // blocks were taken

        await leasing.EndAsync(_ => true, forfeit: false, CancellationToken.None);
        var usage = await store.ReadUsageAsync(pool, CancellationToken.None);
        Assert.All(spent, pair => Assert.Equal(pair.Value, usage.Used(pool.Nodes[pair.Key])));
        Assert.Equal(spent.Values.Sum(), usage.Used(pool.Root));
    }
}
