#!/bin/bash
###############################################################################
#
# fleetbench lab: stand-in for ROCm/MAD scripts/vllm/vllm_benchmark_report.sh
# (era D, 2025-06, rocm/vllm with ROCm 6.4.1).
#
# It does no GPU work. It takes the real script's options, fails where the real
# script or vLLM would fail, and writes MAD's era D report files (names, headers,
# column order, number formats, line endings) filled with synthetic numbers that
# depend on the model, tp, dtype, the host and the GPU slot.
#
# Like the real script it goes on when a vLLM call fails (that point gets no report
# row), and its exit status is that of its last command, the perf file's `mv`: 0 when
# every vLLM call failed (the perf file is then one empty line), 1 when only the perf
# file could not be made although every report was written.
#
# Runs under bash with busybox applets only: awk mkdir mv sleep.
#
###############################################################################

## Usage:
#./vllm_benchmark_report.sh -s $scenario -m $hf_model -g $n_gpu -d $datatype
## example:
## latency + throughput + serving
#./vllm_benchmark_report.sh -s all -m meta-llama/Llama-3.1-8B-Instruct -g 8 -d float16
#./vllm_benchmark_report.sh --scenario latency --model meta-llama/Llama-3.1-8B-Instruct --numgpu 1 --datatype bfloat16
#
## Lab knobs: key=value lines in /fleetbench-lab/bench.env ($FLEETBENCH_LAB_ENV overrides
## the path; no file = a healthy host called "localhost"):
#   host=lab01     seeds this host's few-percent spread
#   mode=ok        ok | fail (vLLM runs out of memory on every point after fail_after;
#                  the script goes on and exits 0) | hang (never returns) | slow
#   factor=1.0     multiplies throughput and divides latency (plants a slow host)
#   slow_s=2       seconds per point in slow mode
#   fail_after=0   points measured before vLLM starts failing in fail mode
#   perf_csv=written  written | missing (the perf step fails, so the final mv does:
#                  every report written, exit 1)

# Model ids and device lists are split on purpose; never glob them.
set -f

usage() {
    echo "Usage: $0 -s <latency|throughput|serving|all> -m <org/model> -g <tp> -d <float16|bfloat16|float8>" >&2
    echo "       long forms: --scenario --model --numgpu --datatype" >&2
}

die_usage() {
    echo "Error: $1" >&2
    usage
    exit 1
}

need_value() {
    if [[ "$#" -lt 2 || -z "$2" || "$2" == -* ]]; then
        die_usage "option $1 requires a value"
    fi
}

scenario=""
model=""
numgpu=""
datatype=""
while [[ "$#" -gt 0 ]]; do
    case $1 in
        -s|--scenario) need_value "$@"; scenario=$2; shift ;;
        -m|--model) need_value "$@"; model=$2; shift ;;
        -g|--numgpu) need_value "$@"; numgpu=$2; shift ;;
        -d|--datatype) need_value "$@"; datatype=$2; shift ;;
        *) echo "Unknown parameter passed: $1"; exit 1 ;;
    esac
    shift
done

[[ -n "$scenario" ]] || die_usage "missing -s/--scenario"
[[ -n "$model" ]] || die_usage "missing -m/--model"
[[ -n "$numgpu" ]] || die_usage "missing -g/--numgpu"
[[ -n "$datatype" ]] || die_usage "missing -d/--datatype"
case $scenario in
    latency|throughput|serving|all) ;;
    *) die_usage "invalid scenario '$scenario' (expected latency, throughput, serving or all)" ;;
esac
case $datatype in
    float16|bfloat16|float8) ;;
    *) die_usage "invalid datatype '$datatype' (expected float16, bfloat16 or float8)" ;;
esac
[[ "$numgpu" =~ ^[1-9][0-9]*$ ]] || die_usage "invalid numgpu '$numgpu' (expected a tensor-parallel size >= 1)"

echo "MODEL: $model "

# MAD's naming: the report name is the part after the org.
model_org_name=(${model//// })
model_name=${model_org_name[1]}
tp=$numgpu

# ---------------------------------------------------------------- lab knobs
lab_env=${FLEETBENCH_LAB_ENV:-/fleetbench-lab/bench.env}
lab_host=localhost
lab_mode=ok
lab_factor=1.0
lab_slow_s=2
lab_fail_after=0
lab_perf_csv=written
if [[ -r "$lab_env" ]]; then
    while IFS= read -r line || [[ -n "$line" ]]; do
        line=${line%$'\r'}
        [[ -z "$line" || "$line" == \#* || "$line" != *=* ]] && continue
        key=${line%%=*}
        value=${line#*=}
        case $key in
            host) lab_host=$value ;;
            mode) lab_mode=$value ;;
            factor) lab_factor=$value ;;
            slow_s) lab_slow_s=$value ;;
            fail_after) lab_fail_after=$value ;;
            perf_csv) lab_perf_csv=$value ;;
        esac
    done < "$lab_env"
fi
lab_fail() {
    echo "[fleetbench-lab] $lab_env: $1" >&2
    exit 1
}
case $lab_mode in
    ok|fail|hang|slow) ;;
    *) lab_fail "unknown mode '$lab_mode' (ok, fail, hang or slow)" ;;
esac
[[ "$lab_factor" =~ ^[0-9]+([.][0-9]+)?$ && ! "$lab_factor" =~ ^0*([.]0*)?$ ]] \
    || lab_fail "factor '$lab_factor' is not a positive number"
[[ "$lab_slow_s" =~ ^[0-9]+([.][0-9]+)?$ ]] || lab_fail "slow_s '$lab_slow_s' is not a number of seconds"
[[ "$lab_fail_after" =~ ^[0-9]+$ ]] || lab_fail "fail_after '$lab_fail_after' is not a count"
case $lab_perf_csv in
    written|missing) ;;
    *) lab_fail "perf_csv '$lab_perf_csv' is not written or missing" ;;
esac

# Visible devices as the HIP runtime sees them; unset = every GPU of the container.
split_devices() {
    local IFS=,
    devices=($HIP_VISIBLE_DEVICES)
}
devices=()
if [[ -n "${HIP_VISIBLE_DEVICES+set}" ]]; then
    split_devices
fi

# Model size from the name ("...-70B-...": 70); 8 when the name does not say.
params_b=8
if [[ "$model_name" =~ ([0-9]+([.][0-9]+)?)[Bb]([^A-Za-z0-9]|$) ]]; then
    params_b=${BASH_REMATCH[1]}
fi

# The physics of the lab image's stand-in vLLM (vllm/_lab.py, whose constants come from
# fleetbench's roofline, src/fleetbench/roofline.py): a decode step streams the weights and
# the batch's KV cache from HBM and costs 2 x parameters FLOPs per sequence, a prefill
# 2 x parameters FLOPs per prompt token; each over an efficiency well below 1, plus fixed
# overheads, on tp CPX partitions of MI300X in NPS4 (the slowest slot the lab gives).
# The model table is _lab.MODELS: active parameters and KV values per token.
AWK_PHYSICS='
function ceil(x,   c) { c = int(x); return (c < x) ? c + 1 : c }
function max(a, b) { return (a > b) ? a : b }
function min(a, b) { return (a < b) ? a : b }
function bandwidth() { return (int(tp / 8) + ceil((tp % 8) / 2) / 4) * 5.3e12 }
function flops() { return tp * (width == 1 ? 2614.9e12 : 1307.4e12) / 8 }
function efficiency() { return (width == 1) ? 0.35 : 0.45 }
function overhead() { return 0.0008 + (tp > 1 ? 0.0006 : 0) }
function decode_s(b, c) {
    return max((params * width + b * c * kv * width) / bandwidth(), 2 * params * b / flops()) / efficiency() + overhead()
}
function prefill_s(b, n) {
    return max(params * width / bandwidth(), 2 * params * b * n / flops()) / efficiency() + overhead()
}
function batch_latency_s(b, inp, out) { return prefill_s(b, inp) + (out - 1) * decode_s(b, inp + out / 2) }
function wave_s(b, inp, out) { return prefill_s(b, inp) + out * decode_s(b, inp + out / 2) }
function waves_s(n, b, inp, out,   full, rest) {
    full = int(n / b); rest = n - full * b
    return full * wave_s(b, inp, out) + (rest ? wave_s(rest, inp, out) : 0)
}
'

# speed (> 1 is faster): factor times a deterministic few percent per host (hash of its
# name) and per slot (hash of the device list); the model's figures from the table, else
# from the size in its name with a generous KV cache (4e-5 values per parameter).
values=$(awk -v f="$lab_factor" -v host="$lab_host" -v slot="${HIP_VISIBLE_DEVICES-}" \
    -v p="$params_b" -v name="$model_name" '
    function hash(text,   h, i) {
        h = 7
        for (i = 1; i <= length(text); i++) h = (h * 31 + ord[substr(text, i, 1)]) % 2147483647
        return h
    }
    BEGIN {
        for (i = 32; i < 127; i++) ord[sprintf("%c", i)] = i
        speed = f * (1 + (hash(host) % 61 - 30) / 1000) * (1 + (hash(slot) % 41 - 20) / 1000)
        n = split("llama-3.2-1b llama-3.2-1b-instruct:1.236e9:16384;" \
            "llama-3.2-3b llama-3.2-3b-instruct:3.213e9:57344;" \
            "llama-2-7b-hf llama-2-7b-chat-hf:6.739e9:262144;" \
            "mistral-7b-v0.1:7.242e9:65536;" \
            "qwen2.5-7b qwen2.5-7b-instruct:7.616e9:28672;" \
            "llama-3.1-8b llama-3.1-8b-instruct:8.031e9:65536;" \
            "mixtral-8x7b-v0.1 mixtral-8x7b-instruct-v0.1:12.88e9:65536;" \
            "llama-2-13b-hf llama-2-13b-chat-hf:13.02e9:409600;" \
            "qwen2.5-14b qwen2.5-14b-instruct:14.78e9:98304;" \
            "qwen2.5-32b qwen2.5-32b-instruct:32.77e9:131072;" \
            "deepseek-v3 deepseek-v3-0324 deepseek-r1 deepseek-r1-0528:37.45e9:35136;" \
            "mixtral-8x22b-v0.1 mixtral-8x22b-instruct-v0.1:39.16e9:114688;" \
            "llama-2-70b-hf llama-2-70b-chat-hf:68.98e9:163840;" \
            "llama-3.1-70b llama-3.1-70b-instruct llama-3.3-70b-instruct:70.56e9:163840;" \
            "qwen2.5-72b qwen2.5-72b-instruct:72.71e9:163840;" \
            "llama-3.1-405b llama-3.1-405b-instruct:405.9e9:258048", rows, ";")
        params = p * 1e9
        kv = params * 4e-5; kv = (kv == int(kv)) ? kv : int(kv) + 1
        wanted = tolower(name)
        for (r = 1; r <= n; r++) {
            split(rows[r], fields, ":")
            count = split(fields[1], names, " ")
            for (k = 1; k <= count; k++) if (names[k] == wanted) { params = fields[2] + 0; kv = fields[3] + 0 }
        }
        printf "%.6f %.6g %d\n", speed, params, kv
    }') || exit 1
read -r speed params kv <<< "$values"
width=2
[[ "$datatype" == float8 ]] && width=1

# ---------------------------------------------------------------- era D layout
report_dir="reports_${datatype}_vllm_rocm6.4.1"
report_summary_dir="${report_dir}/summary"
mkdir -p "$report_dir"
mkdir -p "$report_summary_dir"

# latency conditions
Bat="1 8"
InLatency="128 2048"
OutLatency="128 2048"
# throughput conditions (requests:input:output)
Req_In_Out=("4000:128:128" "3000:128:2048" "3000:2048:128" "1500:2048:2048")
# serving conditions (prompts:input:output:max_concurrency)
Serv_In_Out=("252:128:128:128" "252:128:2048:128" "252:2048:128:128" "252:2048:2048:128")

n_warm=3
n_itr=5

vlog() {
    printf 'INFO %(%m-%d %H:%M:%S)T [%s] %s\n' -1 "$1" "$2"
}

# ---------------------------------------------------------------- vLLM-side failures
points_done=0

fail_gated() {
    local url="https://huggingface.co/${model}/resolve/main/config.json"
    cat_lines=(
        "Traceback (most recent call last):"
        "  File \"/usr/local/lib/python3.12/dist-packages/huggingface_hub/utils/_http.py\", line 409, in hf_raise_for_status"
        "    response.raise_for_status()"
        "  File \"/usr/local/lib/python3.12/dist-packages/requests/models.py\", line 1024, in raise_for_status"
        "    raise HTTPError(http_error_msg, response=self)"
        "requests.exceptions.HTTPError: 401 Client Error: Unauthorized for url: ${url}"
        ""
        "The above exception was the direct cause of the following exception:"
        ""
        "Traceback (most recent call last):"
        "  File \"/usr/local/lib/python3.12/dist-packages/transformers/utils/hub.py\", line 424, in cached_files"
        "    hf_hub_download("
        "huggingface_hub.errors.GatedRepoError: 401 Client Error. (Request ID: Root=1-6650b2c1-3f0c5a9e1d7b4c2a0e9f8d7c;5b6a4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c2d)"
        ""
        "Cannot access gated repo for url ${url}."
        "Access to model ${model} is restricted. You must have access to it and be authenticated to access it. Please log in."
        ""
        "The above exception was the direct cause of the following exception:"
        ""
        "Traceback (most recent call last):"
        "  File \"/app/vllm/benchmarks/benchmark_${1}.py\", line 173, in <module>"
        "    main(args)"
        "  File \"/usr/local/lib/python3.12/dist-packages/vllm/engine/arg_utils.py\", line 1018, in create_model_config"
        "    return ModelConfig("
        "OSError: You are trying to access a gated repo."
        "Make sure to have access to it at https://huggingface.co/${model}."
        "401 Client Error. (Request ID: Root=1-6650b2c1-3f0c5a9e1d7b4c2a0e9f8d7c;5b6a4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c2d)"
        ""
        "Cannot access gated repo for url ${url}."
        "Access to model ${model} is restricted. You must have access to it and be authenticated to access it. Please log in."
    )
    printf '%s\n' "${cat_lines[@]}" >&2
    return 1
}

fail_not_a_model() {
    printf '%s\n' \
        "Traceback (most recent call last):" \
        "  File \"/app/vllm/benchmarks/benchmark_${1}.py\", line 173, in <module>" \
        "    main(args)" \
        "OSError: ${model} is not a local folder and is not a valid model identifier listed on 'https://huggingface.co/models'" \
        "If this is a private repository, make sure to pass a token having permission to this repo either by logging in with \`huggingface-cli login\` or by passing \`token=<your_token>\`" >&2
    return 1
}

fail_devices() {
    printf '%s\n' \
        "Traceback (most recent call last):" \
        "  File \"/app/vllm/benchmarks/benchmark_${1}.py\", line 173, in <module>" \
        "    main(args)" \
        "  File \"/usr/local/lib/python3.12/dist-packages/vllm/config.py\", line 1771, in __post_init__" \
        "    raise ValueError(" \
        "ValueError: $2" >&2
    return 1
}

fail_oom() {
    printf '%s\n' \
        "Traceback (most recent call last):" \
        "  File \"/app/vllm/benchmarks/benchmark_${1}.py\", line 173, in <module>" \
        "    main(args)" \
        "  File \"/usr/local/lib/python3.12/dist-packages/vllm/worker/model_runner.py\", line 1291, in profile_run" \
        "    self.execute_model(model_input, kv_caches, intermediate_tensors)" \
        "torch.OutOfMemoryError: HIP out of memory. Tried to allocate 3.50 GiB. GPU 0 has a total capacity of 191.98 GiB of which 1.12 GiB is free. Of the allocated memory 184.37 GiB is allocated by PyTorch, and 4.87 GiB is reserved by PyTorch but unallocated. If reserved but unallocated memory is large try setting PYTORCH_HIP_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See documentation for Memory Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)" >&2
    return 1
}

# What vLLM checks when it loads the model, and what the lab plants; before every point
# (each point is a vLLM process of its own). Returns 1 when vLLM fails on the point,
# after printing what vLLM prints.
point_begin() {
    local mode=$1
    vlog "__init__.py:239" "Automatically detected platform rocm."
    [[ "$model" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || { fail_not_a_model "$mode"; return 1; }
    case $model in
        meta-llama/*|mistralai/*) [[ -n "${HF_TOKEN:-}" ]] || { fail_gated "$mode"; return 1; } ;;
    esac
    if [[ -n "${HIP_VISIBLE_DEVICES+set}" ]]; then
        local count=${#devices[@]}
        if (( count == 0 )); then
            fail_devices "$mode" "No HIP GPUs are available (HIP_VISIBLE_DEVICES is empty)"
            return 1
        elif (( tp > count )); then
            fail_devices "$mode" "tensor parallel size $tp is larger than the number of visible devices $count (HIP_VISIBLE_DEVICES=$HIP_VISIBLE_DEVICES)"
            return 1
        elif (( tp < count )); then
            # vLLM would idle the extra GPUs; in the lab a slot is exactly its devices.
            fail_devices "$mode" "tensor parallel size $tp does not use all $count visible devices (HIP_VISIBLE_DEVICES=$HIP_VISIBLE_DEVICES): one slot per container"
            return 1
        fi
    fi
    vlog "config.py:3362" "Using max model len 131072"
    vlog "llm_engine.py:240" "Initializing a V0 LLM engine (v0.9.1) with config: model='${model}', dtype=${datatype}, tensor_parallel_size=${tp}, seed=0"
    case $lab_mode in
        hang)
            vlog "custom_all_reduce.py:146" "Registering CUDA graph addresses for ${tp} ranks"
            while :; do sleep 1; done
            ;;
        slow) sleep "$lab_slow_s" ;;
        fail) (( points_done < lab_fail_after )) || { fail_oom "$mode"; return 1; } ;;
    esac
}

# MAD's report step runs after every vLLM call, also after a failed one: without vLLM's
# JSON it fails too, and that point gets no row.
report_without_json() {
    printf '%s\n' \
        "Traceback (most recent call last):" \
        "  File \"/workspace/MAD/scripts/vllm/vllm_benchmark_report.py\", line 75, in <module>" \
        "    with open(args.input_json, newline='') as inpf:" \
        "         ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^" \
        "FileNotFoundError: [Errno 2] No such file or directory: '$1'" >&2
}

# Python's repr of a float written with at most $2 decimals: no trailing zeros, ".0" kept.
AWK_LIB='
function num(x, d,   s) {
    s = sprintf("%." d "f", x)
    if (s ~ /\./) { sub(/0+$/, "", s); sub(/\.$/, ".0", s) }
    return s
}
'

# Appends a row to a summary report the way csv.writer does: CRLF, header only when new.
append_csv() {
    local csv=$1 header=$2 row=$3
    if [[ ! -f "$csv" ]]; then
        printf '%s\r\n' "$header" > "$csv"
    fi
    printf '%s\r\n' "$row" >> "$csv"
}

# awk prints the report row on its first line and vLLM's result lines after it.
emit_point() {
    local csv=$1 header=$2 result=$3
    append_csv "$csv" "$header" "${result%%$'\n'*}"
    [[ "$result" == *$'\n'* ]] && echo "${result#*$'\n'}"
    points_done=$(( points_done + 1 ))
}

run_latency() {
    local mode=latency out inp bat outjson result
    local outcsv=${report_summary_dir}/${model_name}_${mode}_report.csv
    local header="model,mode,tp,input_len,output_len,dtype,batch_size,latency (ms),latency_per_tkn (ms)"
    echo "[INFO] LATENCY"
    for out in $OutLatency; do
        for inp in $InLatency; do
            for bat in $Bat; do
                outjson=${report_dir}/${model_name}_${mode}_bs${bat}_in${inp}_out${out}_${datatype}.json
                echo "$model $mode $bat $tp $inp $out"
                point_begin "$mode" || { report_without_json "$outjson"; continue; }
                result=$(awk -v name="$model_name" -v tp="$tp" -v inp="$inp" -v out="$out" \
                    -v bs="$bat" -v dt="$datatype" -v m="$speed" -v json="$outjson" \
                    -v params="$params" -v kv="$kv" -v width="$width" \
                    "$AWK_LIB$AWK_PHYSICS"'BEGIN {
                        raw = 1000 * batch_latency_s(bs, inp, out) / m
                        lat = sprintf("%.2f", raw) + 0
                        avg = lat / 1000
                        for (i = 0; i < 5; i++) l[i] = num(avg * (1 + (i - 2) * 0.001), 6)
                        printf "{\n    \"avg_latency\": %s,\n    \"latencies\": [\n", num(avg, 6) > json
                        for (i = 0; i < 5; i++) printf "        %s%s\n", l[i], (i < 4 ? "," : "") > json
                        printf "    ],\n    \"percentiles\": {\n" > json
                        printf "        \"10\": %s,\n        \"25\": %s,\n        \"50\": %s,\n", l[0], l[1], l[2] > json
                        printf "        \"75\": %s,\n        \"90\": %s,\n        \"99\": %s\n    }\n}", l[3], l[4], l[4] > json
                        close(json)
                        print name ",latency," tp "," inp "," out "," dt "," bs "," num(lat, 2) "," num(lat / out, 13)
                        printf "Avg latency: %s seconds\n", num(avg, 6)
                    }') || exit 1
                emit_point "$outcsv" "$header" "$result"
            done
        done
    done
}

run_throughput() {
    local mode=throughput req_in_out req inp out outjson result
    local outcsv=${report_summary_dir}/${model_name}_${mode}_report.csv
    local header="model,mode,tp,input_len,output_len,dtype,num_prompts,throughput_tot (tok/sec),throughput_gen (tok/sec)"
    echo "[INFO] THROUGHPUT"
    for req_in_out in "${Req_In_Out[@]}"; do
        req=${req_in_out%%:*}
        inp=${req_in_out#*:}; inp=${inp%%:*}
        out=${req_in_out##*:}
        outjson=${report_dir}/${model_name}_${mode}_req${req}_in${inp}_out${out}_${datatype}.json
        echo "$model $mode $req $tp $inp $out"
        point_begin "$mode" || { report_without_json "$outjson"; continue; }
        result=$(awk -v name="$model_name" -v tp="$tp" -v inp="$inp" -v out="$out" \
            -v req="$req" -v dt="$datatype" -v m="$speed" -v json="$outjson" \
            -v params="$params" -v kv="$kv" -v width="$width" \
            "$AWK_LIB$AWK_PHYSICS"'BEGIN {
                # offline: waves of at most 256 prompts (the default --max-num-seqs of vLLM)
                raw = waves_s(req, min(req, 256), inp, out) / m
                gen = int(req * out / raw)
                tot = int(req * (inp + out) / raw)
                tokens = req * (inp + out)
                elapsed = sprintf("%.4f", tokens / tot) + 0
                printf "{\n    \"elapsed_time\": %s,\n    \"num_requests\": %d,\n", num(elapsed, 4), req > json
                printf "    \"total_num_tokens\": %d,\n", tokens > json
                printf "    \"requests_per_second\": %s,\n", num(req / elapsed, 12) > json
                printf "    \"tokens_per_second\": %s\n}", num(tokens / elapsed, 10) > json
                close(json)
                print name ",throughput," tp "," inp "," out "," dt "," req "," tot "," gen
                printf "Throughput: %.2f requests/s, %.2f total tokens/s, %.2f output tokens/s\n", req / elapsed, tot, gen
            }') || exit 1
        emit_point "$outcsv" "$header" "$result"
    done
}

run_serving() {
    local mode=serving spec prompts inp out mc outjson result stamp rest server_up=""
    local outcsv=${report_summary_dir}/${model_name}_${mode}_report.csv
    local header="model,mode,tp,input_len,output_len,dtype,num_prompts,max_concurrency,throughput_tot (tok/sec),throughput_gen (tok/sec),median_ttft (ms),median_tpot (ms),median_itl (ms),median_e2el (ms)"
    echo "[INFO] SERVING"
    for spec in "${Serv_In_Out[@]}"; do
        prompts=${spec%%:*}; rest=${spec#*:}
        inp=${rest%%:*}; rest=${rest#*:}
        out=${rest%%:*}
        mc=${rest#*:}
        outjson=${report_dir}/${model_name}_${mode}_req${prompts}_in${inp}_out${out}_mc${mc}_${datatype}.json
        echo "$model $mode $prompts $tp $inp $out $mc"
        if [[ -z "$server_up" ]]; then
            # `vllm serve` starts: its first line, then the engine loads (a hang stays there).
            vlog "api_server.py:1287" "vLLM API server version 0.9.1"
        fi
        point_begin "$mode" || { report_without_json "$outjson"; continue; }
        if [[ -z "$server_up" ]]; then
            server_up=1
            vlog "api_server.py:1336" "Starting vLLM API server 0 on http://0.0.0.0:8000"
        fi
        printf -v stamp '%(%Y%m%d-%H%M%S)T' -1
        result=$(awk -v name="$model_name" -v model="$model" -v tp="$tp" -v inp="$inp" \
            -v out="$out" -v prompts="$prompts" -v mc="$mc" -v dt="$datatype" \
            -v m="$speed" -v json="$outjson" -v stamp="$stamp" \
            -v params="$params" -v kv="$kv" -v width="$width" \
            "$AWK_LIB$AWK_PHYSICS"'BEGIN {
                # mc requests in flight (at most the prompts and 256): the median request
                # waits for half the prefills of its wave, each further token is a decode
                # step of the whole wave; the requests run in waves.
                b = max(1, min(min(mc, prompts), 256))
                ttft = max(prefill_s(1, inp), prefill_s(b, inp) * (b + 1) / (2 * b))
                ttft = sprintf("%.4f", 1000 * ttft / m) + 0
                tpot = sprintf("%.4f", 1000 * decode_s(b, inp + out / 2) / m) + 0
                e2el = sprintf("%.4f", ttft + tpot * (out - 1)) + 0
                raw = waves_s(prompts, b, inp, out) / m
                gen = int(prompts * out / raw)
                tot = int(prompts * (inp + out) / raw)
                tin = prompts * inp; tout = prompts * out
                duration = sprintf("%.4f", tout / gen) + 0
                printf "{\"date\": \"%s\", \"backend\": \"vllm\", \"model_id\": \"%s\", \"tokenizer_id\": \"%s\", ", stamp, model, model > json
                printf "\"num_prompts\": %d, \"request_rate\": \"inf\", \"burstiness\": 1.0, \"max_concurrency\": %d, ", prompts, mc > json
                printf "\"duration\": %s, \"completed\": %d, \"total_input_tokens\": %d, \"total_output_tokens\": %d, ", num(duration, 4), prompts, tin, tout > json
                printf "\"request_throughput\": %s, \"request_goodput\": null, ", num(prompts / duration, 12) > json
                printf "\"output_throughput\": %s, \"total_token_throughput\": %s, ", num(tout / duration, 10), num((tin + tout) / duration, 10) > json
                printf "\"input_lens\": [%d, %d], \"output_lens\": [%d, %d], ", inp, inp, out, out > json
                printf "\"ttfts\": [%s, %s], \"itls\": [[%s, %s], [%s, %s]], ", num(ttft / 1000, 10), num(ttft / 1000, 10), num(tpot / 1000, 10), num(tpot / 1000, 10), num(tpot / 1000, 10), num(tpot / 1000, 10) > json
                printf "\"generated_texts\": [\"\", \"\"], \"errors\": [\"\", \"\"]" > json
                split("ttft tpot itl e2el", metric, " ")
                med["ttft"] = ttft; med["tpot"] = tpot; med["itl"] = tpot; med["e2el"] = e2el
                for (k = 1; k <= 4; k++) {
                    v = med[metric[k]]
                    printf ", \"mean_%s_ms\": %s, \"median_%s_ms\": %s, \"std_%s_ms\": %s, \"p99_%s_ms\": %s", metric[k], num(v * 1.01, 8), metric[k], num(v, 4), metric[k], num(v * 0.05, 8), metric[k], num(v * 1.3, 8) > json
                }
                printf "}" > json
                close(json)
                print name ",serving," tp "," inp "," out "," dt "," prompts "," mc "," tot "," gen "," num(ttft, 4) "," num(tpot, 4) "," num(tpot, 4) "," num(e2el, 4)
                print "============ Serving Benchmark Result ============"
                printf "%-40s %d\n", "Successful requests:", prompts
                printf "%-40s %.2f\n", "Benchmark duration (s):", duration
                printf "%-40s %.2f\n", "Output token throughput (tok/s):", gen
                printf "%-40s %.2f\n", "Total Token throughput (tok/s):", tot
                printf "%-40s %.2f\n", "Median TTFT (ms):", ttft
                printf "%-40s %.2f\n", "Median TPOT (ms):", tpot
                printf "%-40s %.2f\n", "Median E2EL (ms):", e2el
                print "=================================================="
            }') || exit 1
        emit_point "$outcsv" "$header" "$result"
    done
}

# ---------------------------------------------------------------- run
if [[ "$scenario" == "latency" || "$scenario" == "all" ]]; then
    run_latency
fi
if [[ "$scenario" == "throughput" || "$scenario" == "all" ]]; then
    run_throughput
fi
if [[ "$scenario" == "serving" || "$scenario" == "all" ]]; then
    run_serving
fi
echo "Generate report of multiple results"
# MAD's parse_csv.py (pandas, LF): every row of every summary report, the configuration
# packed into the model string, the value as a float; an empty table (one empty line)
# when there is no summary report.
perf_csv=perf_${model_name}.csv
summaries=()
for kind in latency throughput serving; do
    if [[ -f "${report_summary_dir}/${model_name}_${kind}_report.csv" ]]; then
        summaries+=("${report_summary_dir}/${model_name}_${kind}_report.csv")
    else
        echo "The file of ${kind} summary is not found."
    fi
done
if [[ "$lab_perf_csv" == missing ]]; then
    # The perf step itself fails (an image without pandas): no perf file to move.
    printf '%s\n' \
        "Traceback (most recent call last):" \
        "  File \"/workspace/MAD/scripts/vllm/parse_csv.py\", line 4, in <module>" \
        "    import pandas as pd" \
        "ModuleNotFoundError: No module named 'pandas'" >&2
elif (( ${#summaries[@]} == 0 )); then
    printf '\n' > "$perf_csv"
else
awk -F, -v OFS=, '
    function f(v) { return (v ~ /[.eEn]/) ? v : v ".0" }
    BEGIN { print "model,performance,metric" }
    { sub(/\r$/, "") }
    FNR == 1 { next }
    FILENAME ~ /_latency_report\.csv$/ {
        print $1 "_latency_" $3 "_" $7 "_" $4 "_" $5 "_" $6, f($8), "ms"; next
    }
    FILENAME ~ /_throughput_report\.csv$/ {
        print $1 "_throughput_" $3 "_" $7 "_" $4 "_" $5 "_" $6, f($9), "tok/sec"; next
    }
    FILENAME ~ /_serving_report\.csv$/ {
        key = $1 "_serving_" $3 "_" $7 "_" $4 "_" $5 "_" $8 "_" $6 "_"
        print key "throughput_tot", f($9), "tok/sec"
        print key "throughput_gen", f($10), "tok/sec"
        print key "median_ttft", f($11), "ms"
        print key "median_tpot", f($12), "ms"
        print key "median_itl", f($13), "ms"
        print key "median_e2el", f($14), "ms"
    }
' "${summaries[@]}" > "$perf_csv"
fi
# The real script's last command: its status is the script's.
mv "$perf_csv" ../
