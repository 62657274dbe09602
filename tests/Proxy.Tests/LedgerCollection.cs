using QuotaProxy.Testing;

namespace QuotaProxy.Tests;

/// <summary>Tests that need both a real Redis and a real PostgreSQL.</summary>
[CollectionDefinition(Name)]
public sealed class LedgerCollection : ICollectionFixture<RedisFixture>, ICollectionFixture<PostgresFixture>
{
    public const string Name = "redis and postgres";
}
