using QuotaProxy;
using QuotaProxy.Cli;

return args is ["quotactl", .. var rest]
    ? await Quotactl.RunAsync(rest, Console.Out, Console.Error)
    : await QuotaProxyHost.RunAsync(args);
