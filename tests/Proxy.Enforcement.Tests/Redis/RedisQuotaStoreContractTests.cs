using Microsoft.Extensions.Time.Testing;
using QuotaProxy.Enforcement.Quotas;
using QuotaProxy.Enforcement.Tests.Quotas;
using QuotaProxy.Testing;

namespace QuotaProxy.Enforcement.Tests.Redis;

/// <summary>The store contract, through <c>debit.lua</c> on a real Redis.</summary>
[Collection(RedisCollection.Name)]
public sealed class RedisQuotaStoreContractTests(RedisFixture redis) : QuotaStoreContractTests
{
    private protected override IQuotaStore CreateStore(FakeTimeProvider clock) => RedisStores.Create(redis.Connection, clock);
}
