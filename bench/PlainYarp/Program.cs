// Plain YARP: a WebApplication with AddReverseProxy and nothing else. Routes and clusters come from the
// command line (bench/run.sh gives it the same route and vendor as QuotaProxy's bench config).
var builder = WebApplication.CreateBuilder(args);
builder.Logging.ClearProviders();
builder.Services.AddReverseProxy().LoadFromConfig(builder.Configuration.GetSection("ReverseProxy"));

var app = builder.Build();
app.MapReverseProxy();
app.Run();
