using QuotaProxy;
using QuotaProxy.Cli;

if (args is ["quotactl", .. var rest])
{
    // Ctrl-C ends `status --watch` cleanly.
    using var stop = new CancellationTokenSource();
    Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
    // On a terminal, destructive commands ask first (unless --yes); piped or scripted, they do not.
    return await Quotactl.RunAsync(rest, Console.Out, Console.Error, stop.Token, Console.IsInputRedirected ? null : Console.In);
}

if (args is ["--help" or "-h"])
{
    await Console.Out.WriteAsync(ConfigCheck.Usage);
    return 0;
}

if (args is ["--version"])
{
    await Console.Out.WriteLineAsync($"QuotaProxy {ConfigCheck.Version}");
    return 0;
}

if (args is ["check", .. var checkArgs])
{
    return await QuotaProxyHost.CheckAsync(checkArgs);
}

return await QuotaProxyHost.RunAsync(args);
