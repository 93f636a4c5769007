# Report for scripts/bench.sh: results.md, results.png, profile.md and the
# README section, all from $RAW/results.tsv and the raw sample files.

# val KEY RUNTIME: the recorded summary value or "".
val() {
  awk -F'\t' -v k="$1" -v r="$2" '$1 == k && $2 == r && $3 != "" && $3 != "nan" { v = $3 } END { print v }' \
    "$RAW/results.tsv"
}

# fmt KIND VALUE: human form (kb -> MiB, s, us, mibs).
fmt() {
  [ -n "$2" ] || { echo "—"; return; }
  case $1 in
    kb) awk -v v="$2" 'BEGIN { printf "%.1f MiB", v / 1024 }' ;;
    s) awk -v v="$2" 'BEGIN { printf "%.3f s", v }' ;;
    s1) awk -v v="$2" 'BEGIN { printf "%.1f s", v }' ;;
    us) awk -v v="$2" 'BEGIN { printf "%.1f µs", v }' ;;
    mibs) awk -v v="$2" 'BEGIN { printf "%.0f MiB/s", v }' ;;
    n) echo "$2" ;;
  esac
}

ratio() {
  [ -n "$1" ] && [ -n "$2" ] || { echo ""; return; }
  awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print ""; else printf "%.2f", a / b }'
}

# verdict RATIO TARGET ("<=0.25", ">=1.0" or "")
verdict() {
  local r=$1 t=$2
  [ -n "$t" ] || { echo "—"; return; }
  [ -n "$r" ] || { echo "not measured"; return; }
  awk -v r="$r" -v op="${t:0:2}" -v x="${t:2}" 'BEGIN {
    ok = (op == "<=") ? (r <= x) : (r >= x)
    print ok ? "met" : "**MISSED**" }'
}

target_text() {
  case $1 in
    "<="*) echo "≤ ${1:2}×" ;;
    ">="*) echo "≥ ${1:2}×" ;;
    *) echo "—" ;;
  esac
}

# row LABEL KEY KIND TARGET [OURS_RT]: one table line; chart data for ratios.
row() {
  local label=$1 key=$2 kind=$3 target=$4 ours_rt=${5:-runhcs} a b r ours_text
  a=$(val "$key" "$ours_rt")
  b=$(val "$key" runc)
  r=$(ratio "$a" "$b")
  if [ "$ours_rt" = runhcs_hv ] && [ "$HV_OK" != 1 ]; then
    ours_text=$HV_REASON
    r=""
  elif [ "$OURS_OK" != 1 ]; then
    ours_text="n/a (shim not ready)"
  else
    ours_text=$(fmt "$kind" "$a")
  fi
  printf '| %s | %s | %s | %s | %s | %s |\n' "$label" "$ours_text" "$(fmt "$kind" "$b")" \
    "$([ -n "$r" ] && echo "$r×" || echo "—")" "$(target_text "$target")" \
    "$([ "$ours_rt" = runhcs_hv ] && [ "$HV_OK" != 1 ] && echo "—" || verdict "$r" "$target")"
  if [ -n "$r" ]; then
    printf '"%s"\t%s\t%s\n' "$CHART_LABEL" "$r" "${target:2}" >>"$RAW/chart.dat"
  fi
  if [ -n "$target" ] && [ -n "$r" ] && [ "$(verdict "$r" "$target")" != met ]; then
    echo "$label: $r× (target $(target_text "$target"))" >>"$RAW/missed.txt"
  fi
}

machine_line() {
  local mem cpu
  mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
  cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  echo "$(nproc) CPUs ($cpu), $mem RAM, Linux $(uname -r)"
}

versions_line() {
  local ctrd runc_v crun_v
  ctrd=$(containerd --version 2>/dev/null | awk '{ print $3 }')
  runc_v=$(runc --version 2>/dev/null | awk 'NR == 1 { print $3 }')
  crun_v=$(crun --version 2>/dev/null | awk 'NR == 1 { print $3 }')
  echo "containerd $ctrd, runc $runc_v, crun $crun_v, snapshotter ${CONTAINERD_SNAPSHOTTER:-?}"
}

results_table() {
  : >"$RAW/chart.dat"
  : >"$RAW/missed.txt"
  local n_echo n_relay n_mem
  n_echo=$(awk '$1 == "runc"' "$RAW/echo.txt" 2>/dev/null | wc -l) || true
  n_relay=$(awk '$1 == "runc"' "$RAW/relay.txt" 2>/dev/null | wc -l) || true
  n_mem=$(awk '$1 == "runc"' "$RAW/memory.txt" 2>/dev/null | wc -l) || true
  echo "| measurement | runhcs-v1 (ours, process isolation) | runc-v2 | ours / runc | target | |"
  echo "|---|---|---|---|---|---|"
  CHART_LABEL="memory RSS" row "Resident memory, 1 sleeping container, RSS of the shim tree (median of $n_mem)" mem_rss_kb kb "<=0.25"
  CHART_LABEL="memory PSS" row "Resident memory, 1 sleeping container, PSS of the shim tree" mem_pss_kb kb "<=0.25"
  CHART_LABEL="ctr run echo" row "\`ctr run --rm … echo\` wall time (median of $n_echo)" echo_s s "<=1.0"
  CHART_LABEL="State p50" row "ttrpc \`State\` round trip p50 ($(val state_n runc) calls per shim, batches of $STATE_BATCH alternating)" state_p50_us us "<=0.5"
  CHART_LABEL="State p99" row "ttrpc \`State\` round trip p99 (median of $STATE_ROUNDS rounds' p99; all calls pooled: ours $(fmt us "$(val state_pooled_p99_us runhcs)"), runc-v2 $(fmt us "$(val state_pooled_p99_us runc)"))" state_p99_us us "<=0.5"
  CHART_LABEL="State p99 1-by-1" row "ttrpc \`State\` p99, calls alternating one by one ($(val state_cbc_n runc) per shim; each shim's leftover work lands in the other's calls)" state_cbc_p99_us us ""
  CHART_LABEL="State CPU/call" row "ttrpc \`State\`: CPU time of the runtime's processes per call (schedstat)" state_cpu_us us ""
  CHART_LABEL="relay MiB/s" row "stdout relay of $RELAY_MIB MiB to \`ctr\` → /dev/null, end to end (median of $n_relay)" relay_mibs mibs ">=1.0"
  CHART_LABEL="relay CPU" row "stdout relay: CPU time of the runtime's processes per $RELAY_MIB MiB (perf cpu-clock)" relay_cpu_s s ""
  CHART_LABEL="relay faults" row "stdout relay: page faults in the runtime's processes per $RELAY_MIB MiB" relay_faults n ""
  CHART_LABEL="$DENSITY_N at once: time" row "$DENSITY_N containers started concurrently: total time" density_s s1 ""
  CHART_LABEL="$DENSITY_N at once: RSS" row "$DENSITY_N containers: total RSS of all shim trees" density_rss_kb kb ""
  CHART_LABEL="$DENSITY_N at once: PSS" row "$DENSITY_N containers: total PSS of all shim trees" density_pss_kb kb ""
}

# ---- hypervisor isolation table ----------------------------------------------------------

# hv_text KEY KIND REASON: our value, or why there is none.
hv_text() {
  local v
  v=$(val "$1" runhcs_hv)
  if [ -n "$v" ]; then
    fmt "$2" "$v"
  elif [ -n "$3" ]; then
    echo "$3"
  else
    echo "failed (see warnings)"
  fi
}

# hv_abs_row LABEL KEY MAX_S REFERENCE REASON CHART_LABEL: a wall-time row
# against an absolute target; chart bar = value / target.
hv_abs_row() {
  local label=$1 key=$2 max=$3 ref=$4 reason=$5 chart=$6 v verdict_text
  v=$(val "$key" runhcs_hv)
  if [ -n "$v" ]; then
    verdict_text=$(awk -v v="$v" -v m="$max" 'BEGIN { print (v <= m) ? "met" : "**MISSED**" }')
    printf '"%s"\t%s\t1\n' "$chart" "$(awk -v v="$v" -v m="$max" 'BEGIN { printf "%.2f", v / m }')" >>"$RAW/chart.dat"
    [ "$verdict_text" = met ] || echo "$label: $(fmt s "$v") (target ≤ $max s)" >>"$RAW/missed.txt"
  else
    verdict_text="not measured"
  fi
  printf '| %s | %s | %s | ≤ %s s | %s |\n' "$label" "$(hv_text "$key" s "$reason")" "$ref" "$max" "$verdict_text"
}

# hv_mem_cell PREFIX: "TOTAL (QEMU q + shim s [+ run dir d on tmpfs])"; the run dir
# (rootfs images, VM log) is memory only when /run is a tmpfs.
hv_mem_cell() {
  local p=$1 rss qemu shim dir fs
  rss=$(val "${p}_rss_kb" runhcs_hv)
  [ -n "$rss" ] || return 1
  qemu=$(val "${p}_qemu_kb" runhcs_hv)
  shim=$(val "${p}_shim_kb" runhcs_hv)
  dir=$(val "${p}_rundir_kb" runhcs_hv)
  fs=$(val "${p}_fs" runhcs_hv)
  awk -v r="$rss" -v q="${qemu:-0}" -v s="${shim:-0}" -v d="${dir:-0}" -v fs="$fs" 'BEGIN {
    if (fs == "tmpfs")
      printf "%.1f MiB (QEMU %.1f + shim %.1f + run dir %.1f on tmpfs)", (r + d) / 1024, q / 1024, s / 1024, d / 1024
    else
      printf "%.1f MiB (QEMU %.1f + shim %.1f; run dir %.1f MiB on disk, not counted)", r / 1024, q / 1024, s / 1024, d / 1024 }'
}

hv_mem_text_or() {
  hv_mem_cell "$1" || echo "$2"
}

results_hv_table() {
  local no_hv="" n_boot n_shim n_echo n_mem runc_echo runc_mem runc_pss pod_ref running sandbox
  [ "$HV_OK" = 1 ] || no_hv=$HV_REASON
  n_boot=$(val hv_boot_n runhcs_hv)
  n_shim=$(val hv_shim_boot_n runhcs_hv)
  n_echo=$(val hv_echo_n runhcs_hv)
  n_mem=$(val hv_mem_n runhcs_hv)
  runc_echo=$(val echo_s runc)
  runc_mem=$(val mem_rss_kb runc)
  runc_pss=$(val mem_pss_kb runc)
  pod_ref="—"
  if [ -n "$(val density_rss_kb runc)" ]; then
    pod_ref="runc-v2: $(awk -v v="$(val density_rss_kb runc)" -v n="$HV_POD_N" -v d="$DENSITY_N" \
      'BEGIN { printf "%.1f MiB", v * n / d / 1024 }') ($DENSITY_N-container row × $HV_POD_N/$DENSITY_N)"
  fi
  echo "**Hypervisor isolation**: one QEMU utility VM per shim (accelerator: ${HV_ACCEL:-unknown}); host-side cost"
  echo "of the whole runtime; targets are absolute."
  echo
  echo "| measurement (hypervisor isolation) | runhcs-v1 in a UVM | reference | target | |"
  echo "|---|---|---|---|---|"
  hv_abs_row "UVM boot → guest agent ready, \`build/test/uvm-run boot\` (uvm/ layer, 512 MiB, 1 vCPU; median of ${n_boot:-0})" \
    hv_boot_s 1.6 "—" "${HV_BOOT_REASON:+n/a ($HV_BOOT_REASON)}" "UVM boot / 1.6 s"
  printf '| %s | %s | %s | %s | %s |\n' \
    "UVM boot → guest agent ready inside \`ctr run\`, from the shim's log (shim defaults: 1024 MiB, 2 vCPUs; median of ${n_shim:-0})" \
    "$(hv_text hv_shim_boot_s s "$no_hv")" "—" "—" "—"
  hv_abs_row "\`ctr run --rm … echo\` in a UVM (median of ${n_echo:-0})" hv_echo_s 2.5 \
    "runc-v2: $(fmt s "$runc_echo")" "$no_hv" "UVM echo / 2.5 s"
  printf '| %s | %s | %s | — | — |\n' \
    "Resident memory, 1 sleeping container in a UVM: RSS of shim + QEMU (median of ${n_mem:-0})" \
    "$(hv_mem_text_or hv_mem "${no_hv:-failed (see warnings)}")" "runc-v2: $(fmt kb "$runc_mem")"
  printf '| %s | %s | %s | — | — |\n' "… PSS of shim + QEMU" \
    "$(hv_text hv_mem_pss_kb kb "$no_hv")" "runc-v2: $(fmt kb "$runc_pss")"
  running=$(val hv_pod_running runhcs_hv)
  sandbox=$(val hv_pod_sandbox_s runhcs_hv)
  printf '| %s | %s | %s | — | — |\n' \
    "Pod of $HV_POD_N containers in one UVM (sandbox, then $((HV_POD_N - 1)) members $HV_POD_PARALLEL at a time): time to start all" \
    "$(hv_text hv_pod_s s1 "$no_hv")${running:+ ($running of $HV_POD_N running; the sandbox with the UVM boot $(fmt s1 "$sandbox"))}" "—"
  printf '| %s | %s | %s | — | — |\n' "Pod of $HV_POD_N: resident memory, RSS of shim + QEMU" \
    "$(hv_mem_text_or hv_pod "${no_hv:-failed (see warnings)}")" "$pod_ref"
  printf '| %s | %s | %s | — | — |\n' "Pod of $HV_POD_N: PSS of shim + QEMU" "$(hv_text hv_pod_pss_kb kb "$no_hv")" "—"
}

write_results_md() {
  local table=$1
  {
    echo "# Benchmarks: containerd-shim-runhcs-v1 vs containerd-shim-runc-v2"
    echo
    echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') on $(machine_line); $(versions_line)."
    echo "Load average at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine adds noise)."
    echo "Both shims under one private containerd, alternating A/B rounds; medians; the ratios of"
    echo "this one run are the figures of record. Lower is better except for the relay throughput."
    echo
    cat "$table"
    echo
    echo "Memory counts every process of the shim's tree in the host pid namespace (ours: the shim"
    echo "and its guest agent \`gcs\`; runc-v2: the shim), not the container's own processes."
    echo "Relay throughput includes container start and teardown (the same for both: \`ctr run --rm\`)."
    echo "Wall times, throughput and especially the State p99 depend on how busy the machine is (load"
    echo "average above): on 2 cores a waiting runnable process adds milliseconds to any single call."
    echo "The CPU-time and page-fault rows measure the runtimes' own work and hardly depend on load."
    echo "State calls come from one client that alternates between the two shims in batches of $STATE_BATCH calls"
    echo "(the first call after each switch untimed), so that both see the same machine noise but neither"
    echo "shim's leftover work after a reply (runc-v2: Go's sysmon, spinning threads, GC) runs inside the"
    echo "other's calls; the one-by-one row is the earlier method, where it does (see profile.md). The"
    echo "p99 is the median over $STATE_ROUNDS rounds ($((STATE_CALLS / STATE_ROUNDS)) calls per shim each, order flipping) of each"
    echo "round's p99, like the other rows' medians of rounds: a burst of other work spoils one round."
    echo
    echo "Hypervisor isolation: each standalone task gets its own shim and QEMU utility VM; a pod"
    echo "(io.kubernetes.cri.container-type / sandbox-id annotations) shares one. The bare boot time is"
    echo "\`build/test/uvm-run boot\` (the uvm/ layer the shim uses, start → NegotiateProtocol answered);"
    echo "the shim's own \"guest agent ready after\" log lines give the same interval inside \`ctr run\`"
    echo "(every UVM of the run except the probe's, which boots with a cold page cache). Memory is the"
    echo "shim's process tree plus its QEMU in the host pid namespace (the guest's processes live inside"
    echo "QEMU's RSS), sampled ${HV_SETTLE_S:-5} s after start; the UVM run directory (the rootfs ext4 images,"
    echo "VM log, sockets) is added when /run is a tmpfs. Samples: \`raw/hv-*.txt\`, QEMU's mappings in"
    echo "profile.md."
    if [ "$OURS_OK" != 1 ]; then
      echo
      echo "Our shim was not measured: $OURS_REASON"
    fi
    if [ -s "$RAW/warnings.txt" ]; then
      echo
      echo "Warnings during the run:"
      echo
      sed 's/^/- /' "$RAW/warnings.txt"
    fi
    echo
    echo "Raw samples: \`raw/\` (memory.txt, echo.txt, state-*.ns, relay.txt, density.txt); chart: results.png;"
    echo "profile of missed targets: profile.md."
  } >"$OUT/results.md"
}

plot_chart() {
  [ -s "$RAW/chart.dat" ] || return 0
  gnuplot -e "datafile='$RAW/chart.dat'; outfile='$OUT/results.png'; subtitle='$(date -u +%F), $(nproc) CPUs, Linux $(uname -r)'" \
    "$REPO_ROOT/bench/plot.gp" 2>>"$RAW/gnuplot.log" || warn "gnuplot failed (see raw/gnuplot.log)"
}

perf_top() {
  local data=$1
  shift
  [ -s "$data" ] || { echo "(no profile data)"; return; }
  perf report -i "$data" --stdio --no-children --percent-limit 0.3 --sort comm,dso,symbol -g none "$@" 2>/dev/null |
    grep -v '^# [^S]' | grep -v '^#$' | grep -v '^$' | grep -v '^# Samples: 0 ' | head -n 40
}

perf_faults_by_comm() {
  [ -s "$1" ] || { echo "(no profile data)"; return; }
  perf report -i "$1" --stdio --sort comm -F sample,comm -g none 2>/dev/null |
    awk '/^# Samples/ { fault = ($0 ~ /page-faults/) } fault && /^ +[0-9]/ && $1 >= 100' | sort -rn | head -n 12
}

write_profile_md() {
  {
    echo "# Profile of the targets missed in this run"
    echo
    echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') on $(machine_line)."
    echo "perf here has no hardware counters (\`perf stat -e instructions\` is not supported in this VM),"
    echo "so profiles are cpu-clock samples."
    echo
    if [ -s "$RAW/missed.txt" ]; then
      echo "Missed:"
      echo
      sed 's/^/- /' "$RAW/missed.txt"
    else
      echo "No target missed."
    fi
    if [ -f "$REPO_ROOT/bench/profile-notes.md" ]; then
      echo
      cat "$REPO_ROOT/bench/profile-notes.md"
    fi
    echo
    echo "## Memory: resident kB per mapping (first memory round)"
    for rt in runhcs runc runhcs_hv; do
      [ -s "$RAW/smaps-$rt.txt" ] || continue
      echo
      echo "### $rt"
      echo
      echo '```'
      cat "$RAW/smaps-$rt.txt"
      echo '```'
    done
    if [ -s "$RAW/memory-after-state.txt" ]; then
      echo
      echo "Shim-tree memory after the State calls (RSS kB, PSS kB, processes, detail):"
      echo
      echo '```'
      cat "$RAW/memory-after-state.txt"
      echo '```'
    fi
    echo
    echo "## ttrpc State: our shim and gcs while answering 20000 State calls (cpu-clock, self time)"
    echo
    echo '```'
    perf_top "$RAW/perf-state.data"
    echo '```'
    echo
    for rt in runhcs runc; do
      [ -s "$RAW/perf-relay-$rt.data" ] || continue
      echo
      echo "## stdout relay through $rt: the runtime's processes during one $RELAY_MIB MiB relay (self time, % of all samples on the machine)"
      echo
      echo '```'
      perf_top "$RAW/perf-relay-$rt.data" --comms containerd-shim,gcs
      echo '```'
      echo
      echo "Page faults per process during that relay (every fault counted; $RELAY_MIB MiB = $((RELAY_MIB * 256)) pages):"
      echo
      echo '```'
      perf_faults_by_comm "$RAW/perf-relay-$rt.data"
      echo '```'
    done
  } >"$OUT/profile.md"
}

update_readme() {
  local table=$1 readme=$REPO_ROOT/README.md section
  [ "${BENCH_README:-1}" = 1 ] || return 0
  section=$(mktemp)
  {
    echo "<!-- bench:start -->"
    echo "## Benchmarks"
    echo
    echo "\`make bench\` (a few minutes, bounded at ~15; table, chart \`results.png\`, raw samples and"
    echo "\`profile.md\` (profiles of missed targets, with the proposed fixes) in \`build/bench/\`). Latest run:"
    echo "$(date -u '+%Y-%m-%d') on $(machine_line); $(versions_line)."
    echo "Alternating A/B rounds under one private containerd; medians; ratios are ours / runc-v2."
    echo
    cat "$table"
    echo "<!-- bench:end -->"
  } >"$section"
  if grep -q '<!-- bench:start -->' "$readme" && grep -q '<!-- bench:end -->' "$readme"; then
    awk -v f="$section" '
      /<!-- bench:start -->/ { while ((getline line < f) > 0) print line; skip = 1; next }
      /<!-- bench:end -->/ { skip = 0; next }
      !skip { print }' "$readme" >"$readme.bench.tmp" && mv "$readme.bench.tmp" "$readme"
  else
    { echo; cat "$section"; } >>"$readme"
  fi
  rm -f "$section"
}

bench_report() {
  local table=$RAW/table.md
  {
    results_table
    echo
    results_hv_table
  } >"$table"
  write_results_md "$table"
  plot_chart
  write_profile_md
  update_readme "$table"
  cat "$table"
  if [ -s "$RAW/missed.txt" ]; then
    log "targets missed (see $OUT/profile.md):"
    sed 's/^/  /' "$RAW/missed.txt" >&2
  fi
}
