using QuotaProxy.Testing;

namespace QuotaProxy.Enforcement.Tests;

[CollectionDefinition(Name)]
public sealed class PostgresCollection : ICollectionFixture<PostgresFixture>
{
    public const string Name = "postgres";
}
