#!/bin/bash
# git-sync's --exechook-command, run by both git-sync containers of the reconciler-serve
# pod after each sync (docs/deploy.md, "The pod"). It builds the one folder that
# `reconciler serve` reads, /config/manifests, from main's manifests and the
# reconciler-state branch's ledgers, and swaps it in whole.
#
# Why a copy, not links: serve refuses a ledger whose real path is outside the manifests
# folder, and each git-sync publishes a worktree of its own, so the two refs have to
# become one real folder. Why a swap: serve looks at the folder every 2 s; it must find
# the old pair or the new, never half of one. Idempotent, as git-sync requires of hooks:
# two runs at once (one per git-sync) each end with a view of the newest pair.
#
# Only bash and coreutils, which the git-sync image has.
set -euo pipefail

config=${RECONCILER_CONFIG:-/config}       # the pod's shared emptyDir
folder=${RECONCILER_MANIFESTS:-manifests}  # the manifests folder in the config repository
main=$config/git/main/current              # git-sync --root=/config/git/main --link=current
state=$config/git/state/current            # git-sync --root=/config/git/state --link=current
views=$config/views
keep_seconds=60                            # an old view outlives any reload still reading it

# The worktree a git-sync link points at now. Its basename is the synced commit (the
# contract in git-sync's README); git-sync writes the link relative to its folder.
worktree() {
    local target
    target=$(readlink "$1")
    if [[ $target == /* ]]; then echo "$target"; else echo "${1%/*}/$target"; fi
}

if [[ ! -L $main || ! -L $state ]]; then
    echo "assemble: waiting for the other git-sync's first sync"
    exit 0  # the other one's hook assembles when it lands
fi
mkdir -p "$views"

# Copy one pair of worktrees into a new folder under views/: false if either vanished.
build() {
    local view=$1 m=$2 s=$3
    cp -R "$m/$folder/." "$view/" || return 1
    if [[ -d $s/$folder ]]; then  # the branch keeps each ledger at its path on main
        cp -R "$s/$folder/." "$view/" || return 1
    fi
    echo "main ${m##*/} state ${s##*/}" > "$view/.assembled" && chmod -R a+rX "$view"
}

while :; do
    # Copy from the worktrees the links name now, not through the links, so the view
    # holds exactly the pair it records, however the links move meanwhile.
    m=$(worktree "$main") s=$(worktree "$state")
    view=$(mktemp -d "$views/view.XXXXXX")  # mode 0700 until build opens it to serve
    if [[ ! -d $m/$folder ]] || ! build "$view" "$m" "$s"; then
        rm -rf -- "$view"
        # git-sync deletes a worktree once the next commit is synced: that sync's own
        # hook copies the new pair, and so does this one, from the top.
        [[ "$(worktree "$main") $(worktree "$state")" != "$m $s" ]] && continue
        if [[ ! -d $m/$folder ]]; then
            echo "assemble: main has no folder '$folder' (RECONCILER_MANIFESTS)" >&2
        else
            echo "assemble: could not copy main ${m##*/} with state ${s##*/}" >&2
        fi
        exit 1  # git-sync logs it and runs the hook again after --exechook-backoff
    fi
    link=$config/.manifests.$$
    ln -sfn "views/${view##*/}" "$link"
    mv -T "$link" "$config/manifests"  # rename(2): atomic
    # A sync that landed while this one copied has a hook of its own, which may have
    # swapped first: go round until the pair served is the pair synced.
    [[ "$(worktree "$main") $(worktree "$state")" == "$m $s" ]] && break
done
echo "assemble: serving $(cat "$view/.assembled")"

served=$views/$(basename "$(readlink "$config/manifests")")
now=$(date +%s)
for old in "$views"/view.*; do
    [[ $old == "$served" ]] && continue
    made=$(stat -c %Y "$old" 2>/dev/null) || continue  # the other hook removed it
    if (( now - made > keep_seconds )); then
        rm -rf -- "$old"
    fi
done
