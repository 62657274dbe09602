using QuotaProxy;

return await QuotaProxyHost.RunAsync(args);
