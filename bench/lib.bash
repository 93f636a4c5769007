# Measurement functions for scripts/bench.sh (sourced after test/lib/containerd.sh).
# Every sample goes to $RAW/<name>.txt; summary values to $RAW/results.tsv as
# "key<TAB>runtime<TAB>value" (runtime: runhcs, runc, runhcs_hv).

c() {
  containerd_ctr -n "$NS" "$@"
}

warn() {
  log "WARNING: $*"
  echo "$*" >>"$RAW/warnings.txt"
}

budget_ok() {
  ((SECONDS - T0 < BUDGET_S))
}

# bench_wanted PART: true unless BENCH_ONLY names other parts only.
bench_wanted() {
  [ -z "${BENCH_ONLY:-}" ] || [[ " ${BENCH_ONLY//,/ } " == *" $1 "* ]]
}

record() {
  printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RAW/results.tsv"
}

# Runtimes measured in round $1, alternating the order between rounds.
round_order() {
  if [ "$OURS_OK" != 1 ]; then
    echo runc
  elif (($1 % 2 == 0)); then
    echo runhcs runc
  else
    echo runc runhcs
  fi
}

# ctr_run RT [ctr run flags...] -- ID CMD...: ctr run with the runtime's flags.
ctr_run() {
  local rt=$1
  shift
  local -n _rt_args="RT_ARGS_$rt"
  local flags=()
  while [ "$1" != "--" ]; do
    flags+=("$1")
    shift
  done
  shift
  local id=$1
  shift
  c run "${flags[@]}" "${_rt_args[@]}" "$IMAGE" "$id" "$@"
}

task_status() {
  c task ls 2>/dev/null | awk -v id="$1" '$1 == id { print $3 }'
}

task_running() {
  [ "$(task_status "$1")" = RUNNING ]
}

# Detached sleeping container, RUNNING on return.
start_sleeper() {
  local rt=$1 id=$2
  ctr_run "$rt" -d -- "$id" sleep 1000000 </dev/null >/dev/null || return 1
  wait_until 30 task_running "$id"
}

remove_task() {
  CTR_TIMEOUT=30 c task delete -f "$1" >/dev/null 2>&1 || true
  CTR_TIMEOUT=30 c container rm "$1" >/dev/null 2>&1 || true
}

# wait_pids PID...: waits for these children only (a bare `wait` would also
# wait for containerd, started in the background by containerd_start).
wait_pids() {
  local pid
  for pid in "$@"; do
    wait "$pid" 2>/dev/null || true
  done
}

# Removes many containers, 10 at a time.
remove_tasks() {
  local id pids=()
  for id in "$@"; do
    remove_task "$id" &
    pids+=($!)
    if ((${#pids[@]} == 10)); then
      wait_pids "${pids[@]}"
      pids=()
    fi
  done
  wait_pids "${pids[@]}"
}

bench_kill_helpers() {
  local pid
  for pid in "${BENCH_HELPER_PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
  done
  return 0
}
BENCH_HELPER_PIDS=()

# Pids of the long-running shims of this containerd whose task id matches the
# shell pattern $1 (the `start` invocations exit before we look).
shim_pids_matching() {
  local pattern=$1 f pid
  local -a argv
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}
    pid=${pid%/cmdline}
    { mapfile -d "" -t argv <"$f"; } 2>/dev/null || continue
    [[ "${argv[0]:-}" == *containerd-shim* ]] || continue
    local i id="" sock=0
    for ((i = 1; i < ${#argv[@]}; i++)); do
      case "${argv[i]}" in
        -id | --id) id=${argv[i + 1]:-} ;;
        "$CONTAINERD_SOCK" | "unix://$CONTAINERD_SOCK") sock=1 ;;
      esac
    done
    # shellcheck disable=SC2053
    if [ "$sock" = 1 ] && [[ "$id" == $pattern ]]; then
      echo "$pid"
    fi
  done
  return 0
}

# tree_mem PID...: memory of the process trees under the given pids, counting
# only processes in our own pid namespace: the containers' processes live in
# their own namespace and are not the runtime's cost.
# Prints "RSS_KB PSS_KB NPROCS DETAIL" (DETAIL = comm:rss:pss,...).
tree_mem() {
  local myns members pid ns rss pss comm total_rss=0 total_pss=0 n=0 detail=""
  myns=$(readlink /proc/self/ns/pid)
  members=$(ps -e -o pid=,ppid= | awk -v roots="$*" '
    BEGIN { k = split(roots, r, " "); for (i = 1; i <= k; i++) isroot[r[i]] = 1 }
    { parent[$1] = $2 }
    END {
      for (p in parent) {
        q = p
        for (depth = 0; q != "" && !(q in isroot) && depth < 64; depth++) q = parent[q]
        if (q in isroot) print p
      }
    }')
  for pid in $members; do
    ns=$(readlink "/proc/$pid/ns/pid" 2>/dev/null) || continue
    [ "$ns" = "$myns" ] || continue
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || continue
    pss=$(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup" 2>/dev/null) || continue
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
    [ -n "$rss" ] && [ -n "$pss" ] || continue
    total_rss=$((total_rss + rss))
    total_pss=$((total_pss + pss))
    n=$((n + 1))
    detail+="${detail:+,}$comm:$rss:$pss"
  done
  echo "$total_rss $total_pss $n ${detail:--}"
}

# tree_cpu_ns PID...: CPU time (ns, /proc/*/task/*/schedstat) used so far by
# the process trees under the given pids, own pid namespace only.
tree_cpu_ns() {
  local myns pid total=0 t
  myns=$(readlink /proc/self/ns/pid)
  for pid in $(ps -e -o pid=,ppid= | awk -v roots="$*" '
    BEGIN { k = split(roots, r, " "); for (i = 1; i <= k; i++) isroot[r[i]] = 1 }
    { parent[$1] = $2 }
    END { for (p in parent) { q = p; for (d = 0; q != "" && !(q in isroot) && d < 64; d++) q = parent[q]; if (q in isroot) print p } }'); do
    [ "$(readlink "/proc/$pid/ns/pid" 2>/dev/null)" = "$myns" ] || continue
    t=$(cat /proc/"$pid"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
    total=$((total + t))
  done
  echo "$total"
}

# smaps_breakdown PID...: per process of the trees (own pid namespace only),
# resident kB per mapping (file name, [heap], [stack], anon), largest first.
smaps_breakdown() {
  local myns pid
  myns=$(readlink /proc/self/ns/pid)
  for pid in $(ps -e -o pid=,ppid= | awk -v roots="$*" '
    BEGIN { k = split(roots, r, " "); for (i = 1; i <= k; i++) isroot[r[i]] = 1 }
    { parent[$1] = $2 }
    END { for (p in parent) { q = p; for (d = 0; q != "" && !(q in isroot) && d < 64; d++) q = parent[q]; if (q in isroot) print p } }'); do
    [ "$(readlink "/proc/$pid/ns/pid" 2>/dev/null)" = "$myns" ] || continue
    echo "== pid $pid $(cat "/proc/$pid/comm" 2>/dev/null): $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-150)"
    awk '
      /^[0-9a-f]+-[0-9a-f]+ / { name = (NF >= 6) ? $6 : "[anon]"; next }
      /^Rss:/ { rss[name] += $2 }
      /^Pss:/ { pss[name] += $2 }
      END { for (n in rss) if (rss[n] > 0) printf "%8d kB rss %8d kB pss  %s\n", rss[n], pss[n], n }' \
      "/proc/$pid/smaps" 2>/dev/null | sort -rn | head -n 15
  done
}

# Statistics over one number per line on stdin.
median() {
  sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# percentile P: nearest rank.
percentile() {
  sort -g | awk -v p="$1" '{ a[NR] = $1 } END { if (NR == 0) { print "nan"; exit } i = int(p / 100 * NR + 0.999999); if (i < 1) i = 1; print a[i] }'
}

now_s() {
  echo "$EPOCHREALTIME"
}

elapsed() {
  awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'
}

# ---- probes -----------------------------------------------------------------

bench_probe_ours() {
  local out
  if out=$(CTR_TIMEOUT=60 ctr_run runhcs --rm -- probe-runhcs echo bench-ok </dev/null 2>&1) &&
    [ "$out" = bench-ok ]; then
    OURS_OK=1
    log "probe: runhcs-v1 (process isolation) runs containers"
  else
    OURS_REASON="shim cannot run containers yet: $(echo "$out" | head -n 1 | cut -c1-120)"
    warn "probe: runhcs-v1: $OURS_REASON"
    remove_task probe-runhcs
  fi
}

bench_probe_hypervisor() {
  local out
  if [ "$OURS_OK" != 1 ]; then
    HV_REASON="n/a (shim not ready)"
    return 0
  fi
  if [ -n "$HV_PREREQ_REASON" ]; then
    HV_REASON="n/a ($HV_PREREQ_REASON)"
    warn "probe: hypervisor isolation not measured: $HV_PREREQ_REASON"
    return 0
  fi
  if out=$(CTR_TIMEOUT=120 ctr_run runhcs_hv --rm -- probe-hv echo bench-ok </dev/null 2>&1) &&
    [ "$out" = bench-ok ]; then
    HV_OK=1
    log "probe: runhcs-v1 (hypervisor isolation) runs containers"
  else
    if echo "$out" | grep -q 'hypervisor isolation is not available'; then
      HV_REASON="n/a (UVM not landed: the shim refuses hypervisor isolation)"
    else
      HV_REASON="n/a (UVM failed: $(echo "$out" | head -n 1 | cut -c1-80))"
    fi
    log "probe: hypervisor isolation not usable: $out"
    warn "probe: runhcs-v1 hypervisor isolation: $HV_REASON"
    remove_task probe-hv
  fi
}

# ---- 1. resident memory with one sleeping container ---------------------------

# mem_one RT ID: starts a sleeper, lets it settle, records its runtime's memory.
mem_one() {
  local rt=$1 id=$2 round=$3 pid m
  if ! start_sleeper "$rt" "$id"; then
    warn "memory: $rt container $id did not start"
    remove_task "$id"
    return 0
  fi
  # Let start-up work finish (Go's GC, our first-use buffers) before sampling.
  sleep 2
  pid=$(shim_pids_matching "$id")
  if [ -z "$pid" ]; then
    warn "memory: no shim process found for $id"
  else
    m=$(tree_mem $pid)
    echo "$rt $round $m" >>"$RAW/memory.txt"
    log "memory: $rt round $round: $m"
    [ "$round" != 0 ] || smaps_breakdown $pid >"$RAW/smaps-$rt.txt"
  fi
  remove_task "$id"
}

bench_memory() {
  local r rt
  for ((r = 0; r < MEM_ROUNDS; r++)); do
    budget_ok || { warn "memory: time budget reached after $r rounds"; break; }
    for rt in $(round_order "$r"); do
      mem_one "$rt" "mem$r-$rt" "$r"
    done
  done
  for rt in runhcs runc; do
    [ -s "$RAW/memory.txt" ] || break
    record mem_rss_kb "$rt" "$(awk -v rt=$rt '$1 == rt { print $3 }' "$RAW/memory.txt" | median)"
    record mem_pss_kb "$rt" "$(awk -v rt=$rt '$1 == rt { print $4 }' "$RAW/memory.txt" | median)"
    record mem_procs "$rt" "$(awk -v rt=$rt '$1 == rt { print $5 }' "$RAW/memory.txt" | median)"
  done
}

# ---- 2. ctr run --rm echo ---------------------------------------------------------

# run_echo RT ID: prints the wall time in seconds of one ctr run --rm ... echo.
run_echo() {
  local rt=$1 id=$2 t0 t1 out
  t0=$(now_s)
  out=$(ctr_run "$rt" --rm -- "$id" echo hi </dev/null 2>>"$RAW/errors.txt") || {
    remove_task "$id"
    return 1
  }
  t1=$(now_s)
  [ "$out" = hi ] || return 1
  elapsed "$t0" "$t1"
}

bench_echo() {
  local r rt t
  for rt in $(round_order 0); do
    run_echo "$rt" "warm-$rt" >/dev/null || warn "echo: warm-up run of $rt failed"
  done
  for ((r = 0; r < RUN_ROUNDS; r++)); do
    budget_ok || { warn "echo: time budget reached after $r rounds"; break; }
    for rt in $(round_order "$r"); do
      if t=$(run_echo "$rt" "echo$r-$rt"); then
        echo "$rt $r $t" >>"$RAW/echo.txt"
      else
        warn "echo: $rt round $r failed"
      fi
    done
  done
  for rt in runhcs runc; do
    [ -s "$RAW/echo.txt" ] || break
    record echo_s "$rt" "$(awk -v rt=$rt '$1 == rt { print $3 }' "$RAW/echo.txt" | median)"
  done
  log "echo: $(awk '{ printf "%s=%.3f ", $1, $3 }' "$RAW/echo.txt" 2>/dev/null)"
}

# ---- 3. ttrpc State round trip ------------------------------------------------------

task_address() {
  sed 's|^unix://||' "$CONTAINERD_STATE/io.containerd.runtime.v2.task/$NS/$1/address"
}

# profile_state PID...: perf profile of the shim tree while it answers State calls.
profile_state() {
  local addr=$1 id=$2
  shift 2
  local pids
  pids=$(IFS=,; echo "$*")
  perf record -q -e cpu-clock -F 4999 -g -p "$pids" -o "$RAW/perf-state.data" >/dev/null 2>&1 &
  local perf_pid=$!
  BENCH_HELPER_PIDS+=("$perf_pid")
  sleep 0.5
  "$BENCH_BIN/ttrpc-state-bench" state 20000 0 "$addr" "$id" >/dev/null 2>&1 || true
  kill -INT "$perf_pid" 2>/dev/null
  wait "$perf_pid" 2>/dev/null || true
}

# state_block B COUNT "CLIENT FLAGS" NAME: COUNT timed State calls per shim,
# round order B; samples appended to raw/NAME-<rt>.ns (uses addr from bench_state).
state_block() {
  local b=$1 count=$2 client_flags=$3 name=$4 rt order=() targets=() t=0
  for rt in $(round_order "$b"); do
    [ -n "${addr[$rt]:-}" ] || continue
    order+=("$rt")
    targets+=("${addr[$rt]}" "st-$rt")
  done
  [ ${#order[@]} -gt 0 ] || return 0
  # shellcheck disable=SC2086
  if ! timeout 120 "$BENCH_BIN/ttrpc-state-bench" state $client_flags "$count" 50 "${targets[@]}" \
    >"$RAW/state-block.out" 2>>"$RAW/state.log"; then
    warn "$name: block $b failed (see raw/state.log)"
    return 0
  fi
  for rt in "${order[@]}"; do
    awk -v t="$t" '$1 == t { print $2 }' "$RAW/state-block.out" >>"$RAW/$name-$rt.ns"
    awk -v t="$t" '$1 == t { print $2 }' "$RAW/state-block.out" | percentile 99 >>"$RAW/$name-$rt.p99"
    t=$((t + 1))
  done
}

bench_state() {
  local rt b per=$((STATE_CALLS / STATE_ROUNDS)) ids=()
  declare -A addr=()
  for rt in $(round_order 0); do
    if start_sleeper "$rt" "st-$rt"; then
      addr[$rt]=$(task_address "st-$rt")
    else
      warn "state: $rt container did not start"
    fi
    ids+=("st-$rt")
  done
  # One client, batches of STATE_BATCH calls alternating between the shims
  # (ABAB..., the order flipping between rounds), so that both see the same
  # machine noise while neither shim's leftover work (Go's sysmon, spinning
  # threads, GC after runc-v2's reply) lands inside the other's calls; the
  # first call after each switch is untimed (it pays for the switch). p99 is
  # the median of the rounds' p99s: a burst of other work on the machine
  # spoils one round, not the figure.
  for ((b = 0; b < STATE_ROUNDS; b++)); do
    state_block "$b" "$per" "-b $STATE_BATCH -s 1" state
  done
  # The former method, for comparison: calls alternate one by one.
  state_block 0 "$STATE_CALLS_CBC" "-b 1 -s 0" state-cbc
  rm -f "$RAW/state-block.out"
  # Server-side CPU per call: independent of how long the shim waited for a core.
  local pids before after calls=5000
  for rt in runhcs runc; do
    [ -n "${addr[$rt]:-}" ] || continue
    pids=$(shim_pids_matching "st-$rt")
    before=$(tree_cpu_ns $pids)
    timeout 120 "$BENCH_BIN/ttrpc-state-bench" state "$calls" 0 "${addr[$rt]}" "st-$rt" \
      >/dev/null 2>>"$RAW/state.log" || { warn "state: cpu run of $rt failed"; continue; }
    after=$(tree_cpu_ns $pids)
    record state_cpu_us "$rt" "$(awk -v a="$before" -v b="$after" -v n="$calls" 'BEGIN { printf "%.2f", (b - a) / n / 1000 }')"
  done
  for rt in runhcs runc; do
    [ -s "$RAW/state-$rt.ns" ] || continue
    record state_p50_us "$rt" "$(percentile 50 <"$RAW/state-$rt.ns" | awk '{ printf "%.1f", $1 / 1000 }')"
    record state_p99_us "$rt" "$(median <"$RAW/state-$rt.p99" | awk '{ printf "%.1f", $1 / 1000 }')"
    record state_pooled_p99_us "$rt" "$(percentile 99 <"$RAW/state-$rt.ns" | awk '{ printf "%.1f", $1 / 1000 }')"
    record state_n "$rt" "$(wc -l <"$RAW/state-$rt.ns")"
    [ -s "$RAW/state-cbc-$rt.ns" ] || continue
    record state_cbc_p99_us "$rt" "$(percentile 99 <"$RAW/state-cbc-$rt.ns" | awk '{ printf "%.1f", $1 / 1000 }')"
    record state_cbc_n "$rt" "$(wc -l <"$RAW/state-cbc-$rt.ns")"
  done
  if [ "$PROFILE" = 1 ] && [ -n "${addr[runhcs]:-}" ] && command -v perf >/dev/null; then
    profile_state "${addr[runhcs]}" st-runhcs $(shim_pids_matching st-runhcs)
  fi
  # The shim's memory after 2000+ calls (a leak shows here, not in bench_memory).
  for rt in runhcs runc; do
    [ -n "${addr[$rt]:-}" ] || continue
    echo "$rt $(tree_mem $(shim_pids_matching "st-$rt"))" >>"$RAW/memory-after-state.txt"
  done
  remove_tasks "${ids[@]}"
}

# ---- 4. stdout relay ----------------------------------------------------------------

# run_relay RT ID MIB: prints the wall time of ctr run --rm ... dd (stdout to /dev/null).
run_relay() {
  local rt=$1 id=$2 mib=$3 t0 t1
  t0=$(now_s)
  CTR_TIMEOUT=300 ctr_run "$rt" --rm -- "$id" dd if=/dev/zero bs=1M count="$mib" \
    </dev/null >/dev/null 2>>"$RAW/relay-dd.txt" || { remove_task "$id"; return 1; }
  t1=$(now_s)
  elapsed "$t0" "$t1"
}

# comm_samples DATA EVENT: samples of the runtimes' own processes (shim, gcs)
# for one event of a system-wide perf recording.
comm_samples() {
  perf report -i "$1" --stdio --sort comm -F sample,comm -g none 2>/dev/null |
    awk -v ev="$2" '/^# Samples/ { on = index($0, ev) > 0 }
      on && ($2 == "containerd-shim" || $2 == "gcs") { s += $1 } END { print s + 0 }'
}

# profile_relay RT: one relay under a system-wide perf recording (cpu-clock at
# 999 Hz, every page fault). Records the CPU seconds and page faults of the
# runtime's own processes: unlike wall time, these hardly depend on how busy
# the machine is.
profile_relay() {
  local rt=$1 data=$RAW/perf-relay-$1.data perf_pid samples faults
  perf record -q -a -e cpu-clock -F 999 -e 'page-faults/period=1/' -o "$data" >/dev/null 2>&1 &
  perf_pid=$!
  BENCH_HELPER_PIDS+=("$perf_pid")
  sleep 0.5
  run_relay "$rt" "relay-prof-$rt" "$RELAY_MIB" >/dev/null || warn "relay: profiled run of $rt failed"
  kill -INT "$perf_pid" 2>/dev/null
  wait "$perf_pid" 2>/dev/null || true
  samples=$(comm_samples "$data" cpu-clock)
  faults=$(comm_samples "$data" page-faults)
  record relay_cpu_s "$rt" "$(awk -v s="$samples" 'BEGIN { printf "%.3f", s / 999 }')"
  record relay_faults "$rt" "$faults"
  log "relay: $rt runtime processes used $samples cpu-clock samples, $faults page faults"
}

bench_relay() {
  local r rt t bytes
  declare -A relay_ok=()
  # Correctness first: every byte arrives (64 MiB, counted by the reader).
  for rt in $(round_order 0); do
    bytes=$(CTR_TIMEOUT=120 ctr_run "$rt" --rm -- "relaycheck-$rt" dd if=/dev/zero bs=1M count=64 \
      </dev/null 2>/dev/null | wc -c)
    if [ "$bytes" = $((64 << 20)) ]; then
      relay_ok[$rt]=1
    else
      warn "relay: $rt delivered $bytes of $((64 << 20)) bytes"
      remove_task "relaycheck-$rt"
    fi
  done
  for ((r = 0; r < RELAY_ROUNDS; r++)); do
    budget_ok || { warn "relay: time budget reached after $r rounds"; break; }
    for rt in $(round_order "$r"); do
      [ -n "${relay_ok[$rt]:-}" ] || continue
      if t=$(run_relay "$rt" "relay$r-$rt" "$RELAY_MIB"); then
        echo "$rt $r $t" >>"$RAW/relay.txt"
      else
        warn "relay: $rt round $r failed"
      fi
    done
  done
  for rt in runhcs runc; do
    [ -s "$RAW/relay.txt" ] || break
    t=$(awk -v rt=$rt '$1 == rt { print $3 }' "$RAW/relay.txt" | median)
    [ "$t" != nan ] || continue
    record relay_s "$rt" "$t"
    record relay_mibs "$rt" "$(awk -v m="$RELAY_MIB" -v t="$t" 'BEGIN { printf "%.0f", m / t }')"
  done
  if [ "$PROFILE" = 1 ] && command -v perf >/dev/null; then
    for rt in $(round_order 0); do
      [ -n "${relay_ok[$rt]:-}" ] && budget_ok && profile_relay "$rt"
    done
  fi
  return 0
}

# ---- 5. many containers at once ------------------------------------------------------

density_one() {
  local rt=$1 round=$2 i t0 t1 running m ids=() pids=()
  for ((i = 0; i < DENSITY_N; i++)); do
    ids+=("dn$round-$rt-$i")
  done
  t0=$(now_s)
  for i in "${ids[@]}"; do
    CTR_TIMEOUT=300 ctr_run "$rt" -d -- "$i" sleep 1000000 </dev/null >/dev/null 2>>"$RAW/errors.txt" &
    pids+=($!)
  done
  wait_pids "${pids[@]}"
  t1=$(now_s)
  running=$(c task ls 2>/dev/null | awk -v p="dn$round-$rt-" 'index($1, p) == 1 && $3 == "RUNNING"' | wc -l)
  sleep 2
  m=$(tree_mem $(shim_pids_matching "dn$round-$rt-*"))
  echo "$rt $round $(elapsed "$t0" "$t1") $running $m" >>"$RAW/density.txt"
  log "density: $rt round $round: $(elapsed "$t0" "$t1") s, $running running, mem ${m%% *} kB RSS"
  [ "$running" = "$DENSITY_N" ] || warn "density: only $running of $DENSITY_N $rt containers running"
  remove_tasks "${ids[@]}"
}

bench_density() {
  local r rt
  for ((r = 0; r < DENSITY_ROUNDS; r++)); do
    for rt in $(round_order "$r"); do
      budget_ok || { warn "density: time budget reached"; break 2; }
      density_one "$rt" "$r"
    done
  done
  for rt in runhcs runc; do
    [ -s "$RAW/density.txt" ] || break
    # Only rounds where every container ran count.
    record density_s "$rt" "$(awk -v rt=$rt -v n="$DENSITY_N" '$1 == rt && $4 == n { print $3 }' "$RAW/density.txt" | median)"
    record density_rss_kb "$rt" "$(awk -v rt=$rt -v n="$DENSITY_N" '$1 == rt && $4 == n { print $5 }' "$RAW/density.txt" | median)"
    record density_pss_kb "$rt" "$(awk -v rt=$rt -v n="$DENSITY_N" '$1 == rt && $4 == n { print $6 }' "$RAW/density.txt" | median)"
  done
}

# ---- 6. hypervisor isolation: one QEMU utility VM per shim (TCG on hosts without KVM) ----
# Raw files: hv-boot.txt (uvm-run boots: round, seconds), hv-boot/<round>.out,
# hv-echo.txt (round, seconds), hv-memory.txt and hv-pod.txt (see hv_mem),
# hv-shim-boot.txt (task, seconds: the shims' own "guest agent ready after" log lines),
# qemu.pids (every QEMU this run started, for the exit check).

UVM_RUN_ROOT=/run/runhcs-uvm

# is_our_qemu PID: a live QEMU of a shim's UVM or of uvm-run under $RAW (the
# command line check guards against a reused pid).
is_our_qemu() {
  local cmdline
  cmdline=$({ tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null) || return 1
  [[ "$cmdline" == *qemu-system* ]] || return 1
  [[ "$cmdline" == *"$UVM_RUN_ROOT/uvm-"* || "$cmdline" == *"$RAW/"* ]]
}

hv_vm_gone() {
  ! is_our_qemu "$1"
}

# hv_note_vms FILE...: adds the QEMU pids logged in FILE ("qemu pid N", by the
# shims into containerd's log, by uvm-run into its output) to qemu.pids.
hv_note_vms() {
  local f
  for f in "$@"; do
    [ -r "$f" ] || continue
    sed -n 's/.*qemu pid \([0-9][0-9]*\).*/\1/p' "$f" >>"$RAW/qemu.pids" || true
  done
  return 0
}

# Exit handler, run after containerd's cleanup (which deletes every task and so
# ends their VMs): kills and reports any QEMU of this run that is still there.
hv_kill_leftover_vms() {
  local pid left=""
  [ -s "$RAW/qemu.pids" ] || return 0
  for pid in $(sort -un "$RAW/qemu.pids"); do
    wait_until 10 hv_vm_gone "$pid" && continue
    kill -KILL "$pid" 2>/dev/null
    left+=" $pid"
  done
  if [ -n "$left" ]; then
    log "WARNING: QEMU of this run still running at exit, killed:$left"
  else
    log "bench: every QEMU of this run ($(sort -un "$RAW/qemu.pids" | wc -l)) is gone"
  fi
  return 0
}

# hv_reap_vms PID...: waits (30 s) for QEMUs whose owner has finished with them;
# kills and reports any that stay.
hv_reap_vms() {
  local pid
  for pid in "$@"; do
    wait_until 30 hv_vm_gone "$pid" && continue
    warn "hypervisor: QEMU $pid still running 30 s after its owner was done with it; killed it"
    kill -KILL "$pid" 2>/dev/null || true
  done
  return 0
}

# hv_vm_dirs SHIM_PID...: the UVM run directories (owner file = shim pid) of these shims.
hv_vm_dirs() {
  local d owner p
  for d in "$UVM_RUN_ROOT"/uvm-*; do
    owner=$(cat "$d/owner" 2>/dev/null) || continue
    for p in "$@"; do
      if [ "$owner" = "$p" ]; then
        echo "$d"
      fi
    done
  done
  return 0
}

# hv_vm_pids SHIM_PID...: the QEMU processes of these shims' UVMs.
hv_vm_pids() {
  local d pid
  for d in $(hv_vm_dirs "$@"); do
    pid=$(cat "$d/vm.pid" 2>/dev/null) || continue
    if is_our_qemu "$pid"; then
      echo "$pid"
    fi
  done
  return 0
}

# hv_mem SHIM_PID...: host cost of these shims and their UVMs: the shim trees and
# QEMU (own pid namespace) plus the UVM run directories (rootfs ext4 images, VM
# log, sockets; memory when /run is a tmpfs, disk otherwise). Prints
# "RSS_KB PSS_KB NPROCS QEMU_RSS_KB QEMU_PSS_KB OTHER_RSS_KB RUNDIR_KB RUNDIR_FS DETAIL".
hv_mem() {
  local vms m d kb rundir_kb=0 fs=none
  vms=$(hv_vm_pids "$@")
  # shellcheck disable=SC2086
  m=$(tree_mem "$@" $vms)
  for d in $(hv_vm_dirs "$@"); do
    kb=$(du -sk "$d" 2>/dev/null | cut -f1) || true
    rundir_kb=$((rundir_kb + ${kb:-0}))
    fs=$(stat -f -c %T "$d" 2>/dev/null) || fs=unknown
  done
  echo "$m" | awk -v dk="$rundir_kb" -v fs="${fs// /_}" '{
    q = 0; qp = 0; n = split($4, parts, ",")
    for (i = 1; i <= n; i++) { split(parts[i], f, ":"); if (f[1] ~ /^qemu/) { q += f[2]; qp += f[3] } }
    print $1, $2, $3, q, qp, $1 - q, dk, fs, $4 }'
}

# hv_mem_text "RSS PSS NPROCS QEMU QEMU_PSS OTHER RUNDIR FS ...": one log line.
hv_mem_text() {
  echo "$1" | awk '{ printf "RSS %.1f MiB (QEMU %.1f, shim %.1f), PSS %.1f MiB, run dir %.1f MiB on %s",
    $1 / 1024, $4 / 1024, $6 / 1024, $2 / 1024, $7 / 1024, $8 }'
}

# hv_boot_one ROUND: one UVM boot -> guest agent ready with build/test/uvm-run
# (the uvm/ layer the shim uses; 512 MiB, 1 vCPU; no container).
hv_boot_one() {
  local r=$1 dir=$RAW/hv-boot/$1 t rc=0
  mkdir -p "$dir"
  timeout --kill-after=5 120 "$UVM_RUN" boot "$HV_BOOT_DIR" /nonexistent /nonexistent "$dir" \
    </dev/null >"$dir.out" 2>&1 || rc=$?
  hv_note_vms "$dir.out"
  # uvm-run ends its VM; one stopped by the timeout leaves it behind.
  # shellcheck disable=SC2046
  hv_reap_vms $(sed -n 's/.*qemu pid \([0-9][0-9]*\).*/\1/p' "$dir.out")
  t=$(awk '$1 == "agent-ready" { print $2 }' "$dir.out")
  if [ "$rc" != 0 ] || [ -z "$t" ]; then
    warn "hv boot: uvm-run boot round $r failed (rc $rc): $(awk '/FAIL|rror/ { print; exit }' "$dir.out" | cut -c1-120)"
    return 0
  fi
  echo "$r $t" >>"$RAW/hv-boot.txt"
  log "hv boot: round $r: guest agent ready after $t s"
}

hv_boots() {
  local r
  if [ -z "${UVM_RUN:-}" ]; then
    warn "hv boot: not measured: $HV_BOOT_REASON"
    return 0
  fi
  for ((r = 0; r < HV_BOOT_ROUNDS; r++)); do
    budget_ok || { warn "hv boot: time budget reached after $r rounds"; break; }
    hv_boot_one "$r"
  done
}

hv_echo() {
  local r t
  for ((r = 0; r < HV_ECHO_ROUNDS; r++)); do
    budget_ok || { warn "hv echo: time budget reached after $r rounds"; break; }
    if t=$(CTR_TIMEOUT=120 run_echo runhcs_hv "hvecho$r"); then
      echo "$r $t" >>"$RAW/hv-echo.txt"
      log "hv echo: round $r: $t s"
    else
      warn "hv echo: round $r failed"
    fi
  done
}

# hv_mem_one ROUND: one sleeping container in its own UVM.
hv_mem_one() {
  local round=$1 id=hvmem$1 pid vms m
  if ! CTR_TIMEOUT=120 start_sleeper runhcs_hv "$id" 2>>"$RAW/errors.txt"; then
    warn "hv memory: container $id did not start"
    remove_task "$id"
    return 0
  fi
  # The guest loads its late modules in the background after the agent is up.
  sleep "$HV_SETTLE_S"
  pid=$(shim_pids_matching "$id")
  # shellcheck disable=SC2086
  vms=$(hv_vm_pids $pid)
  if [ -z "$pid" ] || [ -z "$vms" ]; then
    warn "hv memory: no shim ($pid) or no QEMU ($vms) found for $id"
  else
    # shellcheck disable=SC2086
    m=$(hv_mem $pid)
    echo "$round $m" >>"$RAW/hv-memory.txt"
    log "hv memory: round $round: $(hv_mem_text "$m")"
    if [ "$round" = 0 ]; then
      # shellcheck disable=SC2086
      smaps_breakdown $pid $vms >"$RAW/smaps-runhcs_hv.txt" || true
    fi
  fi
  remove_task "$id"
  # shellcheck disable=SC2086
  hv_reap_vms $vms
}

# One pod: the sandbox (which boots the UVM), then HV_POD_N - 1 members joining
# it, HV_POD_PARALLEL `ctr run -d` at a time; time until all have returned, and
# the host cost of the pod once they run.
hv_pod() {
  local pod=hvpod i t0 t_sandbox t1 running shim vms n_shims n_vms m ids=() pids=()
  local sandbox_args=(--annotation io.kubernetes.cri.container-type=sandbox
    --annotation "io.kubernetes.cri.sandbox-id=$pod")
  local member_args=(--annotation io.kubernetes.cri.container-type=container
    --annotation "io.kubernetes.cri.sandbox-id=$pod")
  for ((i = 1; i < HV_POD_N; i++)); do
    ids+=("$pod-$i")
  done
  t0=$(now_s)
  if ! CTR_TIMEOUT=120 ctr_run runhcs_hv -d "${sandbox_args[@]}" -- "$pod" sleep 1000000 \
    </dev/null >/dev/null 2>>"$RAW/errors.txt"; then
    warn "hv pod: the sandbox did not start"
    remove_task "$pod"
    return 0
  fi
  t_sandbox=$(now_s)
  for i in "${ids[@]}"; do
    CTR_TIMEOUT=180 ctr_run runhcs_hv -d "${member_args[@]}" -- "$i" sleep 1000000 \
      </dev/null >/dev/null 2>>"$RAW/errors.txt" &
    pids+=($!)
    if ((${#pids[@]} >= HV_POD_PARALLEL)); then
      wait_pids "${pids[@]}"
      pids=()
    fi
  done
  wait_pids "${pids[@]}"
  t1=$(now_s)
  running=$( (c task ls 2>/dev/null || true) |
    awk -v p="$pod" '($1 == p || index($1, p "-") == 1) && $3 == "RUNNING"' | wc -l)
  sleep "$HV_SETTLE_S"
  shim=$(shim_pids_matching "$pod*")
  # shellcheck disable=SC2086
  vms=$(hv_vm_pids $shim)
  # shellcheck disable=SC2086
  m=$(hv_mem $shim)
  # shellcheck disable=SC2086
  n_shims=$(count_words $shim)
  # shellcheck disable=SC2086
  n_vms=$(count_words $vms)
  echo "$(elapsed "$t0" "$t1") $(elapsed "$t0" "$t_sandbox") $running $n_shims $n_vms $m" >>"$RAW/hv-pod.txt"
  log "hv pod: $running of $HV_POD_N running after $(elapsed "$t0" "$t1") s (sandbox $(elapsed "$t0" "$t_sandbox") s); $(hv_mem_text "$m")"
  [ "$running" = "$HV_POD_N" ] || warn "hv pod: only $running of $HV_POD_N containers running"
  if [ "$n_shims" != 1 ] || [ "$n_vms" != 1 ]; then
    warn "hv pod: expected one shim and one QEMU, found shims [$shim], QEMUs [$vms]"
  fi
  # CRI's order: the members first, the sandbox (its Delete ends the UVM) last.
  remove_tasks "${ids[@]}"
  remove_task "$pod"
  # shellcheck disable=SC2086
  hv_reap_vms $vms
}

# The shims' own boot timing ("uvm <task>@vm: guest agent ready after S s", info
# level): the boot inside `ctr run`, with the shim's default VM size.
hv_shim_boot_times() {
  [ -r "${CONTAINERD_LOG:-}" ] || return 0
  sed -n 's/.*uvm \([^ ]*\)@vm: guest agent ready after \([0-9.]*\) s.*/\1 \2/p' \
    "$CONTAINERD_LOG" >"$RAW/hv-shim-boot.txt" || true
  hv_note_vms "$CONTAINERD_LOG"
}

count_words() {
  echo $#
}

# hv_col FILE COL [AWK_CONDITION]: median of one column.
hv_col() {
  [ -s "$1" ] || { echo nan; return 0; }
  awk -v c="$2" "${3:-1} { print \$c }" "$1" | median
}

hv_summarize() {
  local f=$RAW/hv-memory.txt p=$RAW/hv-pod.txt fs
  record hv_boot_s runhcs_hv "$(hv_col "$RAW/hv-boot.txt" 2)"
  record hv_boot_n runhcs_hv "$(awk 'END { print NR }' "$RAW/hv-boot.txt" 2>/dev/null || echo 0)"
  # The probe's boot is the first of the run (cold page cache): not counted.
  # shellcheck disable=SC2016
  record hv_shim_boot_s runhcs_hv "$(hv_col "$RAW/hv-shim-boot.txt" 2 '$1 != "probe-hv"')"
  record hv_shim_boot_n runhcs_hv "$(awk '$1 != "probe-hv"' "$RAW/hv-shim-boot.txt" 2>/dev/null | wc -l)"
  record hv_echo_s runhcs_hv "$(hv_col "$RAW/hv-echo.txt" 2)"
  record hv_echo_n runhcs_hv "$(awk 'END { print NR }' "$RAW/hv-echo.txt" 2>/dev/null || echo 0)"
  if [ -s "$f" ]; then
    # Fields after the round: RSS PSS NPROCS QEMU QEMU_PSS OTHER RUNDIR FS.
    fs=$(awk '{ v = $9 } END { print v }' "$f")
    record hv_mem_fs runhcs_hv "$fs"
    record hv_mem_rss_kb runhcs_hv "$(hv_col "$f" 2)"
    record hv_mem_pss_kb runhcs_hv "$(hv_col "$f" 3)"
    record hv_mem_qemu_kb runhcs_hv "$(hv_col "$f" 5)"
    record hv_mem_shim_kb runhcs_hv "$(hv_col "$f" 7)"
    record hv_mem_rundir_kb runhcs_hv "$(hv_col "$f" 8)"
    record hv_mem_n runhcs_hv "$(awk 'END { print NR }' "$f")"
  fi
  if [ -s "$p" ]; then
    # total_s sandbox_s running shims qemus, then hv_mem's fields.
    record hv_pod_s runhcs_hv "$(awk '{ v = $1 } END { print v }' "$p")"
    record hv_pod_sandbox_s runhcs_hv "$(awk '{ v = $2 } END { print v }' "$p")"
    record hv_pod_running runhcs_hv "$(awk '{ v = $3 } END { print v }' "$p")"
    record hv_pod_rss_kb runhcs_hv "$(awk '{ v = $6 } END { print v }' "$p")"
    record hv_pod_pss_kb runhcs_hv "$(awk '{ v = $7 } END { print v }' "$p")"
    record hv_pod_qemu_kb runhcs_hv "$(awk '{ v = $9 } END { print v }' "$p")"
    record hv_pod_shim_kb runhcs_hv "$(awk '{ v = $11 } END { print v }' "$p")"
    record hv_pod_rundir_kb runhcs_hv "$(awk '{ v = $12 } END { print v }' "$p")"
    record hv_pod_fs runhcs_hv "$(awk '{ v = $13 } END { print v }' "$p")"
  fi
  HV_ACCEL=$(cat "$RAW"/hv-boot/*.out "$RAW/hv-qemu-started.txt" 2>/dev/null |
    sed -n 's/.*qemu pid [0-9]* ([a-z0-9]*, \([a-z]*\)).*/\1/p' | sort -u | tr 'a-z' 'A-Z' | paste -sd, || true)
}

bench_hypervisor() {
  local r
  hv_boots
  if [ "$HV_OK" = 1 ]; then
    hv_echo
    for ((r = 0; r < HV_MEM_ROUNDS; r++)); do
      budget_ok || { warn "hv memory: time budget reached after $r rounds"; break; }
      hv_mem_one "$r"
    done
    if budget_ok; then
      hv_pod
    else
      warn "hv pod: time budget reached"
    fi
    hv_shim_boot_times
    grep -h 'qemu pid' "$CONTAINERD_LOG" >"$RAW/hv-qemu-started.txt" 2>/dev/null || true
  fi
  hv_summarize
}

# Exit handler, run before containerd's cleanup removes its log: every QEMU the
# shims started.
hv_note_shim_vms() {
  hv_note_vms "${CONTAINERD_LOG:-}"
}
