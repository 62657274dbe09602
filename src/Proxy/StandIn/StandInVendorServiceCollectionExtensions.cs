
namespace QuotaProxy.StandIn;

internal static class StandInVendorServiceCollectionExtensions
{
    public static IServiceCollection AddStandInVendor(this IServiceCollection services, IConfiguration configuration)
    {
        var url = configuration["StandInVendor:Url"];
        if (!string.IsNullOrEmpty(url))
        {
            services.AddHostedService(sp => new StandInVendor(url, sp.GetRequiredService<ILogger<StandInVendor>>()));
        }

        return services;
    }
}
