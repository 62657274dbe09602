using QuotaProxy.Testing;

namespace QuotaProxy.Enforcement.Tests;

[CollectionDefinition(Name)]
public sealed class RedisCollection : ICollectionFixture<RedisFixture>
{
    public const string Name = "redis";
}
