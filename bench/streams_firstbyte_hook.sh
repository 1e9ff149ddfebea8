# bench/streams_firstbyte_hook.sh - PROF_HOOK for bench/streams.sh: kubectl's steps to the first
# byte of `exec -- echo x` (strace of kubectl, parsed by bench/strace_firstbyte.py) through ckube
# and against bench/streams_floor, per kubectl version (FB_VERSIONS, default "1.27 1.33"),
# FB_RUNS runs each (default 6), alternated; then the API server's and the kubelet's own figures
# for the same execs (their logs), and port-forward's first byte (curl of 100 bytes through a
# fresh `kubectl port-forward`, from its start). Usage:
#   RUNS=0 PROF_HOOK=". $PWD/bench/streams_firstbyte_hook.sh" flock /tmp/ckube-host.lock bench/streams.sh build
# (an absolute path: streams.sh runs the hook from its temp dir)
fbr=${FB_RUNS:-6}
for v in ${FB_VERSIONS:-1.27 1.33}; do
    for i in $(seq "$fbr"); do
        for tgt in ckube floor; do
            kcfg=$tmp/data/kubeconfig; [ $tgt = floor ] && kcfg=$tmp/floor.kubeconfig
            strace -f -tt -e trace=execve,connect,read,write -o "$tmp/st.$v.$tgt.$i" \
                "$KD/kubectl.$v" --kubeconfig "$kcfg" exec rp -- echo x >/dev/null 2>&1
            echo "FB $v $tgt $(python3 "$ROOT/bench/strace_firstbyte.py" "$tmp/st.$v.$tgt.$i")"
        done
    done
    python3 "$ROOT/bench/strace_firstbyte.py" "$tmp/st.$v.ckube.$fbr" --timeline | sed "s/^/FBT $v ckube /"
    python3 "$ROOT/bench/strace_firstbyte.py" "$tmp/st.$v.floor.$fbr" --timeline | sed "s/^/FBT $v floor /"
done
echo "FB server: podproxy (last 8)"; grep 'podproxy: exec.*kubelet answered' "$tmp/server.log" | tail -8 | sed 's/.*kubelet answered/  /'
echo "FB kubelet (last 8)"; grep -o 'first output.*' "$tmp/kubelet.log" | tail -8 | sed 's/^/  /'
# port-forward: from `kubectl port-forward` start to the first byte of a curl through it
for v in ${FB_VERSIONS:-1.27 1.33}; do
    for i in 1 2 3; do
        for tgt in ckube floor; do
            kcfg=$tmp/data/kubeconfig; [ $tgt = floor ] && kcfg=$tmp/floor.kubeconfig
            lp=$(free_port); t0=$(date +%s%N)
            "$KD/kubectl.$v" --kubeconfig "$kcfg" port-forward pod/rp "$lp:8080" >"$tmp/fbpf.log" 2>&1 &
            fp=$!
            for _ in $(seq 500); do grep -qs Forwarding "$tmp/fbpf.log" && break; sleep 0.005; done
            t1=$(date +%s%N)
            fb=$(curl -s -o /dev/null -r 0-99 -w '%{time_starttransfer}' "http://127.0.0.1:$lp/blob")
            kill $fp; wait $fp 2>/dev/null
            echo "FBPF $v $tgt: start->Forwarding $(( (t1 - t0) / 1000000 )) ms, curl first byte $(python3 -c "print('%.1f' % (float('$fb') * 1000))") ms"
        done
    done
done
