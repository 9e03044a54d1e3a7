#!/bin/sh
# drivetrain distenv.sh
# Derive the distributed-training environment (MASTER_ADDR/PORT, torchrun's PET_*, TF_CONFIG,
# JAX coordinator) from LeaderWorkerSet, Grove, Backend.AI, Indexed Job or explicit
# DRIVETRAIN_* variables, for images without drivetrain. POSIX sh (tested under dash, bash and
# busybox sh).
#
#   sh distenv.sh -- CMD [ARGS...]   run CMD (exec) with the derived variables exported
#   sh distenv.sh --print            print them as `export NAME='value'` lines
#   . distenv.sh                     (sourced, from an entrypoint) export them into this shell
#
# Same rules as the Python package drivetrain.distenv (its tests run both on every case):
# a non-empty value the user set is kept, one node derives nothing, malformed input prints
# "distenv: ..." on stderr and exits 1 without running CMD (2 for a usage error; CMD not
# found: 127, as sh reports it; otherwise CMD's own status). Sourced, it takes no arguments,
# never exits the caller (a refusal *returns* that status) and leaves no _dt_* helper
# variable or function behind. The second line of this file is how it tells the two apart.

_dt_alnum=abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789

# _dt_fail MESSAGE [STATUS]: 1 for refused input, 2 for usage (the README's exit-code table).
_dt_fail() {
    printf 'distenv: %s\n' "$1" >&2
    exit "${2:-1}"
}

# True for canonical decimal: "0" or no leading zero, at most 9 digits (no octal surprises,
# no arithmetic overflow).
_dt_natural_text() {
    case $1 in
        '' | *[!0123456789]*) return 1 ;;
        0) return 0 ;;
        0*) return 1 ;;
    esac
    [ ${#1} -le 9 ]
}

# _dt_count NAME VALUE -> _dt_r (a negative count is allowed: it means "not a cluster")
_dt_count() {
    case $2 in
        -*) _dt_natural_text "${2#-}" ;;
        *) _dt_natural_text "$2" ;;
    esac || _dt_fail "$1='$2' is not a whole number (e.g. 2)"
    _dt_r=$(($2))
}

# _dt_natural NAME VALUE -> _dt_r
_dt_natural() {
    _dt_natural_text "$2" || _dt_fail "$1='$2' is not a non-negative whole number (e.g. 0)"
    _dt_r=$(($2))
}

# _dt_port NAME VALUE -> _dt_r
_dt_port() {
    if _dt_natural_text "$2" && [ "$2" -ge 1 ] && [ "$2" -le 65535 ]; then
        _dt_r=$(($2))
    else
        _dt_fail "$1='$2' is not a TCP port (1-65535)"
    fi
}

# _dt_host NAME VALUE: a DNS name or IPv4 literal; no space, glob character, ':' or empty.
_dt_host() {
    case $2 in
        '' | [!$_dt_alnum]* | *[!$_dt_alnum._-]*)
            _dt_fail "$1='$2' is not a host name (letters, digits, '.', '-', '_'; no spaces, no empty entry)"
            ;;
    esac
}

# _dt_need NAME SOURCE -> _dt_r (the non-empty value of NAME)
_dt_need() {
    eval "_dt_r=\${$1-}"
    [ -n "$_dt_r" ] || _dt_fail "$1 is not set (needed for the $2 rank source)"
}

# _dt_split NAME VALUE -> _dt_hosts (comma-joined, checked), _dt_nhosts
_dt_split() {
    _dt_rest=${2%,}
    [ -n "$_dt_rest" ] || _dt_fail "$1 is empty; expected comma-separated host names"
    _dt_hosts=
    _dt_nhosts=0
    while :; do
        _dt_h=${_dt_rest%%,*}
        _dt_host "$1" "$_dt_h"
        _dt_hosts=${_dt_hosts:+$_dt_hosts,}$_dt_h
        _dt_nhosts=$((_dt_nhosts + 1))
        case $_dt_rest in
            *,*) _dt_rest=${_dt_rest#*,} ;;
            *) break ;;
        esac
    done
}

_dt_is_ipv4() {
    _dt_rest=$1.
    _dt_k=0
    while [ -n "$_dt_rest" ]; do
        _dt_p=${_dt_rest%%.*}
        _dt_rest=${_dt_rest#*.}
        case $_dt_p in '' | *[!0123456789]*) return 1 ;; esac
        _dt_k=$((_dt_k + 1))
    done
    [ "$_dt_k" -eq 4 ]
}

# DRIVETRAIN_MASTER_PORT, else the platform's own port variable ($1, may be empty), else 29500.
_dt_base_port() {
    if [ -n "${DRIVETRAIN_MASTER_PORT-}" ]; then
        _dt_port DRIVETRAIN_MASTER_PORT "$DRIVETRAIN_MASTER_PORT"
    elif [ -n "$1" ] && eval "[ -n \"\${$1-}\" ]"; then
        eval "_dt_port $1 \"\$$1\""
    else
        _dt_r=29500
    fi
    _dt_base=$_dt_r
}

# Rank below the count, hosts matching the count, every TF port a real port.
_dt_check_cluster() {
    [ "$_dt_rank" -lt "$_dt_nnodes" ] ||
        _dt_fail "$1=$_dt_rank is not below the node count $_dt_nnodes"
    if [ -n "$_dt_hosts" ] && [ "$_dt_nhosts" -ne "$_dt_nnodes" ]; then
        _dt_fail "$_dt_nhosts hosts listed for $_dt_nnodes nodes ($_dt_source)"
    fi
    [ $((_dt_base + _dt_nnodes - 1)) -le 65535 ] ||
        _dt_fail "port $_dt_base + $((_dt_nnodes - 1)) workers passes 65535"
}

# Each reader sets _dt_nnodes, _dt_rank, _dt_master, _dt_hosts (may be empty: unknown),
# _dt_nhosts and _dt_base, or sets _dt_cluster=no for a single node.

_dt_from_explicit() {
    _dt_need DRIVETRAIN_NNODES explicit
    _dt_count DRIVETRAIN_NNODES "$_dt_r"
    _dt_nnodes=$_dt_r
    if [ "$_dt_nnodes" -le 1 ]; then _dt_cluster=no; return; fi
    _dt_need DRIVETRAIN_NODE_RANK explicit
    _dt_natural DRIVETRAIN_NODE_RANK "$_dt_r"
    _dt_rank=$_dt_r
    _dt_hosts=
    if [ -n "${DRIVETRAIN_HOSTS-}" ]; then _dt_split DRIVETRAIN_HOSTS "$DRIVETRAIN_HOSTS"; fi
    if [ -n "${DRIVETRAIN_MASTER_ADDR-}" ]; then
        _dt_host DRIVETRAIN_MASTER_ADDR "$DRIVETRAIN_MASTER_ADDR"
        _dt_master=$DRIVETRAIN_MASTER_ADDR
    elif [ -n "$_dt_hosts" ]; then
        _dt_master=${_dt_hosts%%,*}
    else
        _dt_fail "DRIVETRAIN_MASTER_ADDR is not set (needed for the explicit rank source, unless DRIVETRAIN_HOSTS lists every node)"
    fi
    _dt_base_port ''
    _dt_check_cluster DRIVETRAIN_NODE_RANK
}

_dt_from_lws() {
    _dt_need LWS_GROUP_SIZE lws
    _dt_count LWS_GROUP_SIZE "$_dt_r"
    _dt_nnodes=$_dt_r
    if [ "$_dt_nnodes" -le 1 ]; then _dt_cluster=no; return; fi
    _dt_need LWS_LEADER_ADDRESS lws
    _dt_host LWS_LEADER_ADDRESS "$_dt_r"
    _dt_master=$_dt_r
    _dt_need LWS_WORKER_INDEX lws
    _dt_natural LWS_WORKER_INDEX "$_dt_r"
    _dt_rank=$_dt_r
    # LWS names the leader pod <lws>-<g> and worker i <lws>-<g>-<i>, under one subdomain.
    # An IP leader address (simulations only) names no pods: no host list, no TF_CONFIG.
    _dt_hosts=
    if ! _dt_is_ipv4 "$_dt_master"; then
        _dt_first=${_dt_master%%.*}
        case $_dt_master in
            *.*) _dt_tail=.${_dt_master#*.} ;;
            *) _dt_tail= ;;
        esac
        _dt_hosts=$_dt_master
        _dt_i=1
        while [ "$_dt_i" -lt "$_dt_nnodes" ]; do
            _dt_hosts=$_dt_hosts,$_dt_first-$_dt_i$_dt_tail
            _dt_i=$((_dt_i + 1))
        done
        _dt_nhosts=$_dt_nnodes
    fi
    _dt_base_port ''
    _dt_check_cluster LWS_WORKER_INDEX
}

_dt_from_grove() {
    _dt_need GROVE_PCSG_TEMPLATE_NUM_PODS grove
    _dt_count GROVE_PCSG_TEMPLATE_NUM_PODS "$_dt_r"
    _dt_nnodes=$_dt_r
    if [ "$_dt_nnodes" -le 1 ]; then _dt_cluster=no; return; fi
    _dt_need GROVE_PCSG_NAME grove
    _dt_host GROVE_PCSG_NAME "$_dt_r"
    _dt_group=$_dt_r
    _dt_need GROVE_PCSG_INDEX grove
    _dt_natural GROVE_PCSG_INDEX "$_dt_r"
    _dt_gindex=$_dt_r
    _dt_need GROVE_HEADLESS_SERVICE grove
    _dt_host GROVE_HEADLESS_SERVICE "$_dt_r"
    _dt_service=$_dt_r
    _dt_need GROVE_PCLQ_NAME grove
    _dt_clique=$_dt_r
    _dt_need GROVE_PCLQ_POD_INDEX grove
    _dt_natural GROVE_PCLQ_POD_INDEX "$_dt_r"
    _dt_pod=$_dt_r
    _dt_need DRIVETRAIN_GROVE_LEADER_CLIQUE grove
    _dt_host DRIVETRAIN_GROVE_LEADER_CLIQUE "$_dt_r"
    _dt_ldr=$_dt_r
    _dt_need DRIVETRAIN_GROVE_WORKER_CLIQUE grove
    _dt_host DRIVETRAIN_GROVE_WORKER_CLIQUE "$_dt_r"
    _dt_wkr=$_dt_r
    # Cliques are <scaling group>-<replica>-<clique>, pods <clique>-<i>; the leader clique
    # holds rank 0 and worker pod i is rank i + 1 (as Dynamo does).
    _dt_prefix=$_dt_group-$_dt_gindex-
    if [ "$_dt_clique" = "$_dt_prefix$_dt_ldr" ]; then
        _dt_rank=$_dt_pod
    elif [ "$_dt_clique" = "$_dt_prefix$_dt_wkr" ]; then
        _dt_rank=$((_dt_pod + 1))
    else
        _dt_fail "GROVE_PCLQ_NAME='$_dt_clique' is neither '$_dt_prefix$_dt_ldr' (leader) nor '$_dt_prefix$_dt_wkr' (workers)"
    fi
    _dt_master=$_dt_prefix$_dt_ldr-0.$_dt_service
    _dt_hosts=$_dt_master
    _dt_i=0
    while [ "$_dt_i" -lt $((_dt_nnodes - 1)) ]; do
        _dt_hosts=$_dt_hosts,$_dt_prefix$_dt_wkr-$_dt_i.$_dt_service
        _dt_i=$((_dt_i + 1))
    done
    _dt_nhosts=$_dt_nnodes
    _dt_base_port ''
    _dt_check_cluster GROVE_PCLQ_POD_INDEX
}

_dt_from_backendai() {
    # As the reference script: an empty or <= 1 size is a single container, not an error.
    if [ -z "${BACKENDAI_CLUSTER_SIZE-}" ]; then _dt_cluster=no; return; fi
    _dt_count BACKENDAI_CLUSTER_SIZE "$BACKENDAI_CLUSTER_SIZE"
    _dt_nnodes=$_dt_r
    if [ "$_dt_nnodes" -le 1 ]; then _dt_cluster=no; return; fi
    _dt_split BACKENDAI_CLUSTER_HOSTS "${BACKENDAI_CLUSTER_HOSTS-}"
    _dt_master=${_dt_hosts%%,*}
    _dt_natural BACKENDAI_CLUSTER_LOCAL_RANK "${BACKENDAI_CLUSTER_LOCAL_RANK:-0}"
    _dt_rank=$_dt_r
    _dt_base_port BACKENDAI_DIST_MASTER_PORT
    _dt_check_cluster BACKENDAI_CLUSTER_LOCAL_RANK
}

_dt_from_indexedjob() {
    _dt_need DRIVETRAIN_NNODES indexedjob
    _dt_count DRIVETRAIN_NNODES "$_dt_r"
    _dt_nnodes=$_dt_r
    if [ "$_dt_nnodes" -le 1 ]; then _dt_cluster=no; return; fi
    _dt_need DRIVETRAIN_JOB_NAME indexedjob
    _dt_host DRIVETRAIN_JOB_NAME "$_dt_r"
    _dt_job=$_dt_r
    _dt_need DRIVETRAIN_JOB_SERVICE indexedjob
    _dt_host DRIVETRAIN_JOB_SERVICE "$_dt_r"
    _dt_service=$_dt_r
    _dt_need JOB_COMPLETION_INDEX indexedjob
    _dt_natural JOB_COMPLETION_INDEX "$_dt_r"
    _dt_rank=$_dt_r
    # Pod i of an Indexed Job is <job>-<i>; with `subdomain: <service>` (a headless Service)
    # it resolves as <job>-<i>.<service>.
    _dt_master=$_dt_job-0.$_dt_service
    _dt_hosts=$_dt_master
    _dt_i=1
    while [ "$_dt_i" -lt "$_dt_nnodes" ]; do
        _dt_hosts=$_dt_hosts,$_dt_job-$_dt_i.$_dt_service
        _dt_i=$((_dt_i + 1))
    done
    _dt_nhosts=$_dt_nnodes
    _dt_base_port ''
    _dt_check_cluster JOB_COMPLETION_INDEX
}

# _dt_put NAME VALUE: keep a non-empty user value, else export VALUE; remember NAME.
_dt_put() {
    eval "_dt_cur=\${$1-}"
    if [ -z "$_dt_cur" ]; then
        eval "$1=\$2"
        export "$1"
    fi
    _dt_names="$_dt_names $1"
}

_dt_print() {
    for _dt_name in $_dt_names; do
        eval "_dt_q=\$$_dt_name"
        _dt_o=
        while :; do
            case $_dt_q in
                *\'*)
                    _dt_o="$_dt_o${_dt_q%%\'*}'\\''"
                    _dt_q=${_dt_q#*\'}
                    ;;
                *) break ;;
            esac
        done
        printf "export %s='%s%s'\n" "$_dt_name" "$_dt_o" "$_dt_q"
    done
}

# _dt_derive: choose the source, read it, export the derived variables (a non-empty user value
# is kept) and list their names in _dt_names. Exits on malformed input.
_dt_derive() {
    _dt_nproc=${DRIVETRAIN_NPROC_PER_NODE-}
    if [ -n "$_dt_nproc" ]; then
        case $_dt_nproc in
            auto | cpu | gpu | xpu) ;;
            *) _dt_natural_text "$_dt_nproc" && [ "$_dt_nproc" != 0 ] ||
                _dt_fail "DRIVETRAIN_NPROC_PER_NODE='$_dt_nproc' is not a positive whole number or one of auto, cpu, gpu, xpu" ;;
        esac
    fi

    _dt_source=${DRIVETRAIN_RANK_SOURCE:-auto}
    case $_dt_source in
        auto)
            if [ -n "${DRIVETRAIN_NODE_RANK-}${DRIVETRAIN_MASTER_ADDR-}${DRIVETRAIN_HOSTS-}" ]; then
                _dt_source=explicit
            elif [ -n "${LWS_LEADER_ADDRESS-}${LWS_GROUP_SIZE-}${LWS_WORKER_INDEX-}" ]; then
                _dt_source=lws
            elif [ -n "${GROVE_PCSG_NAME-}" ]; then
                _dt_source=grove
            elif [ -n "${BACKENDAI_CLUSTER_SIZE-}" ]; then
                _dt_source=backendai
            elif [ -n "${DRIVETRAIN_JOB_NAME-}${DRIVETRAIN_JOB_SERVICE-}" ]; then
                _dt_source=indexedjob
            else
                _dt_source=none
            fi
            ;;
        none | explicit | lws | grove | backendai | indexedjob) ;;
        *) _dt_fail "DRIVETRAIN_RANK_SOURCE='$_dt_source' is not one of auto, none, explicit, lws, grove, backendai, indexedjob" ;;
    esac

    _dt_cluster=yes
    _dt_hosts=
    _dt_nhosts=0
    case $_dt_source in
        none) _dt_cluster=no ;;
        explicit) _dt_from_explicit ;;
        lws) _dt_from_lws ;;
        grove) _dt_from_grove ;;
        backendai) _dt_from_backendai ;;
        indexedjob) _dt_from_indexedjob ;;
    esac

    # explicit and indexedjob count nodes with DRIVETRAIN_NNODES itself: nothing to compare.
    case $_dt_source in none | explicit | indexedjob) _dt_want= ;; *) _dt_want=${DRIVETRAIN_NNODES-} ;; esac
    if [ -n "$_dt_want" ]; then
        _dt_count DRIVETRAIN_NNODES "$DRIVETRAIN_NNODES"
        _dt_want=$_dt_r
        if [ "$_dt_cluster" = yes ]; then _dt_got=$_dt_nnodes; else _dt_got=1; fi
        [ "$_dt_got" -eq "$_dt_want" ] ||
            _dt_fail "the $_dt_source variables describe $_dt_got nodes but DRIVETRAIN_NNODES=$_dt_want"
    fi

    _dt_names=
    if [ "$_dt_cluster" = yes ]; then
        _dt_put MASTER_ADDR "$_dt_master"
        _dt_put MASTER_PORT "$_dt_base"
        _dt_put NNODES "$_dt_nnodes"
        _dt_put NODE_RANK "$_dt_rank"
        _dt_put PET_NNODES "$_dt_nnodes"
        _dt_put PET_NODE_RANK "$_dt_rank"
        _dt_put PET_MASTER_ADDR "$MASTER_ADDR"
        _dt_put PET_MASTER_PORT "$MASTER_PORT"
        if [ -n "$_dt_nproc" ]; then _dt_put PET_NPROC_PER_NODE "$_dt_nproc"; fi
        if [ "$_dt_nproc" = 1 ]; then
            # One process per node: that process is the rank. With more, only a launcher
            # (torchrun) knows each process's rank.
            _dt_put WORLD_SIZE "$_dt_nnodes"
            _dt_put RANK "$_dt_rank"
            _dt_put LOCAL_RANK 0
        fi
        if [ -n "$_dt_hosts" ]; then
            _dt_list=
            _dt_rest=$_dt_hosts
            _dt_i=0
            while :; do
                _dt_list=${_dt_list:+$_dt_list,}\"${_dt_rest%%,*}:$((_dt_base + _dt_i))\"
                _dt_i=$((_dt_i + 1))
                case $_dt_rest in
                    *,*) _dt_rest=${_dt_rest#*,} ;;
                    *) break ;;
                esac
            done
            _dt_put TF_CONFIG "{\"cluster\":{\"worker\":[$_dt_list]},\"task\":{\"type\":\"worker\",\"index\":$_dt_rank}}"
        fi
        _dt_put JAX_COORDINATOR_ADDRESS "$MASTER_ADDR:$MASTER_PORT"
        _dt_put JAX_NUM_PROCESSES "$_dt_nnodes"
        _dt_put JAX_PROCESS_ID "$_dt_rank"
    fi
}

# Sourced or run? Run as a script, $0 is this file, whose second line is the one compared
# below; sourced, $0 is the caller's name. (`(return 0)` cannot tell: dash and busybox accept
# `return` at the top level of a script too.)
_dt_sourced=yes
if [ -f "$0" ] && { IFS= read -r _dt_r && IFS= read -r _dt_r; } 2>/dev/null <"$0" &&
    [ "$_dt_r" = "# drivetrain distenv.sh" ]; then
    _dt_sourced=no
fi

if [ "$_dt_sourced" = yes ]; then
    # Derive in a subshell, where a refusal's `exit` ends only the subshell and the helper
    # variables stay behind; the caller's IFS may be anything. Then export the result here.
    if _dt_exports=$(IFS=' ' && _dt_derive && _dt_print); then
        eval "$_dt_exports"
        _dt_status=0
    else
        _dt_status=$?
    fi
    unset -f _dt_fail _dt_natural_text _dt_count _dt_natural _dt_port _dt_host _dt_need \
        _dt_split _dt_is_ipv4 _dt_base_port _dt_check_cluster _dt_from_explicit _dt_from_lws \
        _dt_from_grove _dt_from_backendai _dt_from_indexedjob _dt_put _dt_print _dt_derive
    eval "unset _dt_alnum _dt_exports _dt_r _dt_sourced _dt_status; return $_dt_status"
fi

case ${1-} in
    --print) _dt_mode=print ;;
    --)
        shift
        [ $# -gt 0 ] || _dt_fail "no command after --" 2
        _dt_mode=exec
        ;;
    *) _dt_fail "usage: sh distenv.sh --print | sh distenv.sh -- CMD [ARGS...] | . distenv.sh" 2 ;;
esac

_dt_derive
if [ "$_dt_mode" = print ]; then
    _dt_print
    exit 0
fi
exec "$@"
