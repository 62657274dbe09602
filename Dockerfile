# QuotaProxy container image: build with the .NET SDK, run on the ASP.NET Core runtime as a non-root user.
#   docker build -t quota-proxy .
#   docker run -p 8080:8080 -p 9090:9090 -v $PWD/config/vendor-250-per-day.json:/etc/quota-proxy/appsettings.json:ro \
#     -e Quota__Store__Redis=redis:6379 quota-proxy --config /etc/quota-proxy/appsettings.json
# Configuration: a mounted JSON file passed with --config (watched: edits reload), and/or environment
# variables with __ for : (Quota__Ledger__ConnectionString=…; a vendor secret in the variable a credential's
# EnvironmentVariable names).

# Base images pinned to exact versions (the SDK and runtime the suite runs on), so a rebuild gets the same
# bits; bump both on purpose, e.g. docker build --build-arg RUNTIME_VERSION=10.0.13 for a runtime patch.
ARG SDK_VERSION=10.0.401
ARG RUNTIME_VERSION=10.0.12

FROM mcr.microsoft.com/dotnet/sdk:${SDK_VERSION} AS build
WORKDIR /src
# Restore first, from the project files alone, so the layer is reused until a dependency changes.
COPY Directory.Build.props Directory.Packages.props ./
COPY src/Proxy/Proxy.csproj src/Proxy/
COPY src/Proxy.Enforcement/Proxy.Enforcement.csproj src/Proxy.Enforcement/
RUN dotnet restore src/Proxy/Proxy.csproj
COPY src/ src/
# The publish output holds no appsettings.json (the demo one, with its known keys, is never published).
RUN dotnet publish src/Proxy/Proxy.csproj -c Release --no-restore -o /app
COPY config/container/appsettings.json /app/appsettings.json

FROM mcr.microsoft.com/dotnet/aspnet:${RUNTIME_VERSION} AS runtime
WORKDIR /app
COPY --from=build /app ./
# The aspnet images ship a non-root user, app (uid 1654); the proxy needs no privilege.
USER $APP_UID
# 8080: the proxy, /metrics, /healthz, /readyz. 9090: the admin API when Quota__Admin__Url=http://0.0.0.0:9090.
EXPOSE 8080 9090
ENTRYPOINT ["dotnet", "QuotaProxy.dll"]
