using QuotaProxy;
using QuotaProxy.Cli;

if (args is ["quotactl", .. var rest])
{
    // Ctrl-C ends `status --watch` cleanly.
    using var stop = new CancellationTokenSource();
    Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
    return await Quotactl.RunAsync(rest, Console.Out, Console.Error, stop.Token);
}

return await QuotaProxyHost.RunAsync(args);
