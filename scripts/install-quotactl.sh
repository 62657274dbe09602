#!/usr/bin/env bash
# Installs quotactl as a command: publishes the proxy (quotactl is one of its verbs) to
# $PREFIX/lib/quotaproxy and writes $PREFIX/bin/quotactl, which runs it directly (about 0.1 s to start,
# where `dotnet run` takes seconds). PREFIX defaults to ~/.local; put $PREFIX/bin on your PATH.
#   bash scripts/install-quotactl.sh && quotactl status --key "$ADMIN_KEY"
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="${PREFIX:-$HOME/.local}"
mkdir -p "$prefix/lib/quotaproxy" "$prefix/bin"
dotnet publish src/Proxy/Proxy.csproj -c Release -o "$prefix/lib/quotaproxy" -nologo -v quiet >/dev/null
cat > "$prefix/bin/quotactl" <<WRAPPER
#!/bin/sh
exec "$prefix/lib/quotaproxy/QuotaProxy" quotactl "\$@"
WRAPPER
chmod +x "$prefix/bin/quotactl"
echo "quotactl installed: $prefix/bin/quotactl"
