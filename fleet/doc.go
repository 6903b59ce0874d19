// Package fleet is the link between one lbd replica and etcd: it keeps the
// replica's copy of the shared runtime state (the keys under one prefix) in
// step with etcd, commits changes to it as etcd transactions, and registers
// the replica under a lease so that every replica can list the live ones.
//
// The link is an actor (Link, one per replica). Its state — the revision
// applied, whether it is connected, the last error, the live replicas — is
// owned by its goroutine and published as an immutable Status. The I/O runs
// on a goroutine the link owns (the session: dial, list, watch, lease), which
// hands what it reads to the actor's mailbox in order, so the actor never
// waits on the network. Who talks to it: the routing-config owner gives it a
// Sink, to which the actor hands the state; admin handlers call Commit and
// WaitApplied; GET /admin/fleet reads Status.
//
// The link is generic: it knows keys and bytes, not backends. Keys given to
// and returned by it are relative to the prefix ("state/pools/web/policy" is
// stored as "/lbd/state/pools/web/policy"). The subprefix "replicas/" is the
// link's own (the registry); Commit refuses keys under it and the Sink never
// sees them.
//
// Semantics, which the admin API inherits:
//
//   - Start and every reconnection begin with a list: one Get of the prefix
//     at a revision R, handed whole to Sink.Reset(kvs, R); then a watch from
//     R+1 hands each revision's events to Sink.Apply, in revision order,
//     none skipped. When the watch fails — an error, a cancel, the server's
//     "compacted" answer (the watcher fell behind history: etcd#8668), or the
//     connection is lost — the link lists again and Resets rather than
//     trusting a resumed watch (the way Traefik's KV provider lost updates,
//     traefik#566). The watch carries WithRequireLeader, so a member cut off
//     from its cluster's leader ends it instead of going quiet.
//   - Commit writes ops as one transaction guarded by each key's
//     ModRevision, and returns once etcd has committed it. It does not apply
//     the change locally: the writer applies its own change from its watch,
//     as every replica does, so all replicas apply the same changes in the
//     same order. WaitApplied(ctx, rev) waits until this replica has handed
//     revision rev to its Sink, so an admin call can answer after its own
//     replica applied the change.
//   - A lost race is ErrConflict (a *ConflictError naming the key): nothing
//     was written; the admin API answers 409 with the reason.
//   - Without a live session Commit fails at once with ErrUnavailable
//     ("fleet: etcd unreachable: <cause>"): nothing is written, so no replica
//     diverges; the admin API answers 503. The Sink keeps the last state it
//     was given, so the data plane keeps serving. The session reconnects with
//     backoff. A Commit that times out after it was sent is ErrUnavailable
//     too, but its outcome is unknown: if etcd did commit it, every replica
//     applies it from its watch, so replicas still agree.
//   - Authentication tokens are refreshed: a client that logs in with a
//     user name and password fetches a new token when etcd says the old one
//     is invalid (expired, or lost in an etcd restart; traefik#11941), and
//     every session logs in afresh.
package fleet
