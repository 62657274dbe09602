using System.Collections.Frozen;

namespace QuotaProxy.Enforcement.Quotas;

/// <summary>The validated quota configuration, compiled once into what a decision needs.</summary>
internal sealed class QuotaModel
{
    private QuotaModel(FrozenDictionary<string, PoolDefinition> pools) => Pools = pools;

    public FrozenDictionary<string, PoolDefinition> Pools { get; }

    /// <summary>
    /// Builds the model from pools that the configuration's validator has accepted.
    /// <paramref name="routePools"/> are the pool lists of the metered routes: pools that one route draws on
    /// together share a hash tag (transitively), so that one decision touches one Redis Cluster slot.
    /// </summary>
    internal static QuotaModel Create(IReadOnlyDictionary<string, PoolSettings> pools, IEnumerable<IReadOnlyList<string>>? routePools = null)
    {
        var tags = HashTags(pools.Keys, routePools ?? []);
        var definitions = pools.ToFrozenDictionary(
            pair => pair.Key,
            pair => PoolDefinition.Create(pair.Key, pair.Value, tags[pair.Key]),
            StringComparer.Ordinal);
        return new QuotaModel(definitions);
    }

    /// <summary>Each pool's tag: the first name (ordinal) among the pools linked to it by routes.</summary>
    private static Dictionary<string, string> HashTags(IEnumerable<string> pools, IEnumerable<IReadOnlyList<string>> routePools)
    {
        var parent = pools.ToDictionary(p => p, p => p, StringComparer.Ordinal);
        string Find(string pool)
        {
            while (parent[pool] != pool)
            {
                pool = parent[pool] = parent[parent[pool]];
            }

            return pool;
        }

        foreach (var route in routePools)
        {
            var known = route.Where(parent.ContainsKey).ToList();
            foreach (var other in known.Skip(1))
            {
                var (a, b) = (Find(known[0]), Find(other));
                if (a != b)
                {
                    // The smaller name becomes the root, so the tag does not depend on the order of routes.
                    (a, b) = string.CompareOrdinal(a, b) < 0 ? (a, b) : (b, a);
                    parent[b] = a;
                }
            }
        }

        return parent.Keys.ToDictionary(p => p, Find, StringComparer.Ordinal);
    }
}
