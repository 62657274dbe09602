using QuotaProxy.Testing;

namespace QuotaProxy.Tests;

/// <summary>
/// The fault tests: a real Redis and PostgreSQL, run on their own after the other collections. Each puts
/// two replicas under load and a fault on a two-core machine; alongside other tests' load, the timing they
/// check (a 503 within the timeout, none with a healthy store) would be the other tests' as much as theirs.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class FaultCollection : ICollectionFixture<RedisFixture>, ICollectionFixture<PostgresFixture>
{
    public const string Name = "faults, one at a time";
}
