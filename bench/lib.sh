# Shared by the bench scripts (sourced, not run). Expects $work (a temp directory) and the pids array.

# On exit (trap cleanup_work EXIT): every process started, PostgreSQL if one was, and $work.
cleanup_work() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -d "$work/pg/data" ] && stop_postgres
  wait 2>/dev/null || true; rm -rf "$work"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# The stand-in vendor: nginx answering a fixed 200 JSON on NGINX_PORT (set here); its pid in NGINX_PID.
start_nginx_vendor() {
  NGINX_PORT=$(free_port)
  mkdir -p "$work/nginx/logs"
  cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / { default_type application/json; return 200 '{"vendor":"ok"}'; }
  }
}
NGINX
  nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" & pids+=($!); NGINX_PID=$!
}

# A redis-server without persistence on REDIS_PORT (set here).
start_redis() {
  REDIS_PORT=$(free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >/dev/null & pids+=($!)
}

# The proxies run in $work/home, an empty directory: the host watches its content root (the working
# directory) for configuration changes, and in $work PostgreSQL's and nginx's files change all the time. In
# $work, each proxy's file watcher woke on every PostgreSQL write: about 4 % of the proxy's CPU while the
# ledger drained (perf, 2026-11-23), which no deployment with its data elsewhere pays.
# Plain YARP as its own minimal app (bench/PlainYarp: no QuotaProxy code): PLAIN_YARP_DLL.
build_plain_yarp() {
  dotnet build bench/PlainYarp/PlainYarp.csproj -c Release -nologo -v quiet >/dev/null
  PLAIN_YARP_DLL=$(pwd)/bench/PlainYarp/bin/Release/net10.0/QuotaProxy.Bench.PlainYarp.dll
}

build_proxy() {
  dotnet build src/Proxy/Proxy.csproj -c Release -nologo -v quiet >/dev/null
  PROXY_DLL=$(pwd)/src/Proxy/bin/Release/net10.0/QuotaProxy.dll
}

# A PostgreSQL of its own in $work/pg on PG_PORT (set here), run as the postgres user when root (initdb and
# postgres refuse root); stop_postgres stops it. psql_q DATABASE SQL answers unaligned, tuples only.
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
start_postgres() {
  PG_PORT=$(free_port)
  mkdir -p "$work/pg"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$work/pg"
  as_postgres initdb -D "$work/pg/data" -U postgres -A trust --no-sync -E UTF8 --locale=C >/dev/null
  as_postgres pg_ctl -D "$work/pg/data" -l "$work/pg/server.log" -w \
    -o "-p $PG_PORT -k $work/pg -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
}
stop_postgres() { as_postgres pg_ctl -D "$work/pg/data" -m immediate stop >/dev/null 2>&1 || true; }
psql_q() { psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$1" -Atc "$2"; }
