//! The control thread: each worker publishes a [`WorkerSnapshot`] of its per-layer counters every
//! second over one bounded channel; the control thread keeps the latest of each worker and sums them.
//! At stop it logs the totals. The operations layer (HTTP API, `/metrics`) reads [`Control`] there.
//!
//! The other way, the control thread changes the guards of all workers at run time (bans, the allow
//! list) and asks for their bans through [`Commands`]: one bounded channel per worker, drained by
//! the worker on its timer tick ([`drain_commands`]); a full channel refuses the command (counted
//! by the sender's result), the control thread never waits on a worker.
//!
//! A worker never waits on the channel while it runs: [`Publisher::publish`] uses `try_send` from the
//! timer tick (never the packet path), and a full channel drops the snapshot and counts it. Only the
//! last snapshot, sent once the worker has stopped, waits for room.
//!
//! Fraud events (a fraud rule's threshold crossed, `docs/fraud.md`) reach the control thread over a
//! second bounded channel ([`fraud_channel`]); it keeps the newest for the operator's hook.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use sbc_core::guard::rules::{FraudEvent, RulesCommand, RulesStats};
use sbc_core::guard::{BanInfo, Guard, GuardCommand, GuardStats};

use crate::observe::Observed;
use crate::stats::{B2bua, Media, Sip, Transport, WorkerStats};

pub(crate) mod ops;

/// How often a worker publishes its snapshot.
pub(crate) const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// Snapshots the channel holds per worker before a publisher's snapshot is dropped.
const QUEUE_PER_WORKER: usize = 4;

/// Commands a worker's channel holds before the control thread's next one is refused.
const COMMANDS_PER_WORKER: usize = 64;

/// Commands a worker applies per tick (the rest wait for the next tick).
const COMMANDS_PER_TICK: usize = 64;

/// What the control thread asks of a worker.
#[derive(Debug)]
// Sent by the operations layer (the HTTP API, `api.rs`).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) enum WorkerCommand {
    /// Change the guard: a ban, a lifted ban, an allowed network.
    Guard(GuardCommand),
    /// Send the worker's bans in force (with its number) on this channel.
    ListBans(Sender<(u16, Vec<BanInfo>)>),
    /// Change the call rules or fraud rules (added, replaced, removed, list entries).
    Rules(RulesCommand),
    /// An operator's request served by the worker's signalling and media (`control/ops.rs`).
    Ops(ops::OpsCommand),
}

/// The control thread's end of the workers' command channels.
#[derive(Clone, Debug)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct Commands {
    workers: Vec<Sender<WorkerCommand>>,
    /// The configuration in force, for reloads (`reload.rs`).
    reloader: Option<std::sync::Arc<dyn ops::Reload>>,
}

/// One bounded command channel per worker: the control end, and each worker's receiver.
pub(crate) fn command_channels(workers: usize) -> (Commands, Vec<Receiver<WorkerCommand>>) {
    let (txs, rxs) = (0..workers.max(1))
        .map(|_| crossbeam_channel::bounded(COMMANDS_PER_WORKER))
        .unzip();
    let commands = Commands {
        workers: txs,
        reloader: None,
    };
    (commands, rxs)
}

#[cfg_attr(not(test), allow(dead_code))]
impl Commands {
    /// Send `cmd` to every worker without waiting; the number of workers that took it (a full or
    /// closed channel refuses it).
    pub(crate) fn guard(&self, cmd: GuardCommand) -> usize {
        self.workers
            .iter()
            .filter(|w| w.try_send(WorkerCommand::Guard(cmd)).is_ok())
            .count()
    }

    /// Send a change of the call or fraud rules to every worker without waiting; the number of
    /// workers that took it.
    pub(crate) fn rules(&self, cmd: &RulesCommand) -> usize {
        self.workers
            .iter()
            .filter(|w| w.try_send(WorkerCommand::Rules(cmd.clone())).is_ok())
            .count()
    }

    /// The bans in force in every worker, waiting at most `wait` for their answers (a worker
    /// answers on its next tick); by worker number, those that answered.
    pub(crate) fn bans(&self, wait: Duration) -> Vec<(u16, Vec<BanInfo>)> {
        let (tx, rx) = crossbeam_channel::bounded(self.workers.len());
        let asked = self
            .workers
            .iter()
            .filter(|w| w.try_send(WorkerCommand::ListBans(tx.clone())).is_ok())
            .count();
        let deadline = Instant::now() + wait;
        let mut out: Vec<_> = (0..asked)
            .map_while(|_| rx.recv_deadline(deadline).ok())
            .collect();
        out.sort_by_key(|(w, _)| *w);
        out
    }
}

/// Apply the commands waiting for worker `worker` to its `guard` at `now` (at most
/// [`COMMANDS_PER_TICK`]); the number applied.
pub(crate) fn drain_commands(
    rx: &Receiver<WorkerCommand>,
    worker: u16,
    now: Instant,
    guard: &mut dyn FnMut(GuardRequest<'_>),
) -> usize {
    let mut n = 0;
    while n < COMMANDS_PER_TICK {
        let Ok(cmd) = rx.try_recv() else { break };
        n += 1;
        match cmd {
            WorkerCommand::Guard(c) => guard(GuardRequest::Apply(now, c)),
            WorkerCommand::ListBans(reply) => {
                let mut bans = Vec::new();
                guard(GuardRequest::List(now, &mut bans));
                // The asker may have stopped waiting: nothing to do then.
                let _ = reply.try_send((worker, bans));
            }
            WorkerCommand::Rules(c) => guard(GuardRequest::Rules(c)),
            WorkerCommand::Ops(c) => guard(GuardRequest::Ops(c)),
        }
    }
    n
}

/// What [`drain_commands`] asks of the worker's guard.
pub(crate) enum GuardRequest<'a> {
    /// Apply a change.
    Apply(Instant, GuardCommand),
    /// Fill in the bans in force.
    List(Instant, &'a mut Vec<BanInfo>),
    /// Change the call or fraud rules (served by the worker's signalling, not the guard).
    Rules(RulesCommand),
    /// An operator's request (served by the worker's signalling and media: `ops::serve`).
    Ops(ops::OpsCommand),
}

impl GuardRequest<'_> {
    /// Serve the request with `guard`.
    pub(crate) fn serve(self, guard: &mut Guard) {
        match self {
            Self::Apply(now, c) => {
                guard.apply(now, c);
            }
            Self::List(now, out) => *out = guard.bans(now),
            // The worker's signalling holds the rules: `Handler::serve_guard` takes these first;
            // the worker serves the operator's requests (`ops::serve`) before it comes here.
            Self::Rules(_) | Self::Ops(_) => {}
        }
    }
}

/// The counters of every layer of one worker, or their sum over workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Layers {
    pub(crate) transport: Transport,
    pub(crate) sip: Sip,
    pub(crate) b2bua: B2bua,
    pub(crate) media: Media,
    pub(crate) guard: GuardStats,
    pub(crate) rules: RulesStats,
    pub(crate) worker: WorkerStats,
    /// Histograms and counts by label for the metrics ([`crate::observe`]).
    pub(crate) observed: Observed,
}

impl Layers {
    /// Add `other` layer by layer.
    pub(crate) fn merge(&mut self, other: &Self) {
        self.transport.merge(&other.transport);
        self.sip.merge(&other.sip);
        self.b2bua.merge(&other.b2bua);
        self.media.merge(&other.media);
        self.guard.merge(&other.guard);
        self.rules.merge(&other.rules);
        self.worker.merge(&other.worker);
        self.observed.merge(&other.observed);
    }
}

/// What one worker counted, as of `at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WorkerSnapshot {
    pub(crate) worker: u16,
    /// Counts the worker's snapshots from 1: a higher one is newer.
    pub(crate) seq: u64,
    pub(crate) at: Instant,
    /// The worker has stopped: this is its last snapshot.
    pub(crate) last: bool,
    pub(crate) layers: Layers,
}

/// The channel the workers publish on: bounded to a few snapshots per worker.
pub(crate) fn channel(workers: usize) -> (Sender<WorkerSnapshot>, Receiver<WorkerSnapshot>) {
    crossbeam_channel::bounded(QUEUE_PER_WORKER * workers.max(1))
}

/// A worker's end of the channel.
pub(crate) struct Publisher {
    worker: u16,
    tx: Sender<WorkerSnapshot>,
    seq: u64,
    next: Instant,
    dropped: u64,
}

impl Publisher {
    /// The first snapshot is due [`PUBLISH_EVERY`] after `now`.
    pub(crate) fn new(worker: u16, tx: Sender<WorkerSnapshot>, now: Instant) -> Self {
        Self {
            worker,
            tx,
            seq: 0,
            next: now + PUBLISH_EVERY,
            dropped: 0,
        }
    }

    /// Whether a snapshot is due at `now`.
    pub(crate) fn due(&self, now: Instant) -> bool {
        now >= self.next
    }

    /// Send `layers` without waiting; a full channel drops them (counted in the next snapshot's
    /// `snapshots_dropped`). The next snapshot is due [`PUBLISH_EVERY`] later.
    pub(crate) fn publish(&mut self, layers: Layers, now: Instant) {
        self.next = now + PUBLISH_EVERY;
        let snap = self.snapshot(layers, now, false);
        match self.tx.try_send(snap) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.dropped += 1,
            // The control thread is gone (the process is stopping): nothing to tell.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// The worker has stopped: send its last snapshot, waiting for room.
    pub(crate) fn finish(mut self, layers: Layers, now: Instant) {
        let snap = self.snapshot(layers, now, true);
        // An error means the control thread is gone: nothing left to tell.
        let _ = self.tx.send(snap);
    }

    fn snapshot(&mut self, mut layers: Layers, now: Instant, last: bool) -> WorkerSnapshot {
        self.seq += 1;
        layers.worker.snapshots_dropped = self.dropped;
        WorkerSnapshot {
            worker: self.worker,
            seq: self.seq,
            at: now,
            last,
            layers,
        }
    }
}

/// The sum over the workers' latest snapshots.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    /// Workers that have published at least once.
    pub(crate) workers: usize,
    pub(crate) layers: Layers,
}

/// Fraud events the workers' channel holds before a worker's event is dropped (and counted).
const FRAUD_QUEUE: usize = 1024;

/// Fraud events the control thread keeps (the newest).
const FRAUD_EVENTS_KEPT: usize = 256;

/// The channel fraud events reach the control thread by.
pub(crate) fn fraud_channel() -> (Sender<FraudEvent>, Receiver<FraudEvent>) {
    crossbeam_channel::bounded(FRAUD_QUEUE)
}

/// The control thread's state: the latest snapshot of each worker, the newest fraud events.
pub(crate) struct Control {
    rx: Receiver<WorkerSnapshot>,
    latest: Vec<Option<WorkerSnapshot>>,
    /// The workers' command channels (for the operations layer to serve).
    pub(crate) commands: Option<Commands>,
    alerts: Receiver<FraudEvent>,
    fraud: VecDeque<FraudEvent>,
}

impl Control {
    /// Keeps the snapshots of `workers` workers received on `rx`.
    pub(crate) fn new(workers: usize, rx: Receiver<WorkerSnapshot>) -> Self {
        Self {
            rx,
            latest: vec![None; workers],
            commands: None,
            alerts: crossbeam_channel::never(),
            fraud: VecDeque::new(),
        }
    }

    /// Keep the workers' command channels.
    pub(crate) fn with_commands(mut self, commands: Commands) -> Self {
        self.commands = Some(commands);
        self
    }

    /// Also receive the workers' fraud events on `alerts`.
    pub(crate) fn with_fraud_events(mut self, alerts: Receiver<FraudEvent>) -> Self {
        self.alerts = alerts;
        self
    }

    /// Keep `e` among the newest fraud events: the operator's hook (a webhook, served by the
    /// operations layer) reads them here.
    fn keep_fraud_event(&mut self, e: FraudEvent) {
        if self.fraud.len() >= FRAUD_EVENTS_KEPT {
            self.fraud.pop_front();
        }
        self.fraud.push_back(e);
    }

    /// The newest fraud events, oldest first.
    #[allow(dead_code)] // read by the operations layer
    pub(crate) fn fraud_events(&self) -> impl Iterator<Item = &FraudEvent> {
        self.fraud.iter()
    }

    /// Keep `snap` if it is the newest of its worker.
    pub(crate) fn absorb(&mut self, snap: WorkerSnapshot) {
        let i = usize::from(snap.worker);
        if i >= self.latest.len() {
            self.latest.resize(i + 1, None);
        }
        if let Some(slot) = self.latest.get_mut(i) {
            if slot.is_none_or(|old| old.seq < snap.seq) {
                *slot = Some(snap);
            }
        }
    }

    /// Receive until every publisher is gone (all workers stopped), then return.
    pub(crate) fn run(mut self) -> Self {
        let (rx, mut alerts) = (self.rx.clone(), self.alerts.clone());
        loop {
            crossbeam_channel::select! {
                recv(rx) -> snap => match snap {
                    Ok(snap) => self.absorb(snap),
                    Err(_) => break,
                },
                recv(alerts) -> e => match e {
                    Ok(e) => self.keep_fraud_event(e),
                    // Every worker is gone: only snapshots are left to wait for.
                    Err(_) => alerts = crossbeam_channel::never(),
                },
            }
        }
        while let Ok(e) = alerts.try_recv() {
            self.keep_fraud_event(e);
        }
        self
    }

    /// Take what waits on the channels without blocking (for a control thread that also serves
    /// the API); false once every worker is gone.
    pub(crate) fn drain(&mut self) -> bool {
        let mut open = true;
        loop {
            match self.rx.try_recv() {
                Ok(snap) => self.absorb(snap),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        while let Ok(e) = self.alerts.try_recv() {
            self.keep_fraud_event(e);
        }
        open
    }

    /// The latest snapshot of every worker that has published, by worker number.
    pub(crate) fn workers(&self) -> impl Iterator<Item = &WorkerSnapshot> {
        self.latest.iter().flatten()
    }

    /// The latest snapshots summed, layer by layer.
    pub(crate) fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for s in self.workers() {
            t.workers += 1;
            t.layers.merge(&s.layers);
        }
        t
    }

    /// Log each worker's last counters ("worker stopped") and their sum ("sbc stopped").
    pub(crate) fn log_stopped(&self) {
        for s in self.workers() {
            tracing::info!(worker = s.worker, counters = ?s.layers, "worker stopped");
        }
        let t = self.totals();
        tracing::info!(workers = t.workers, counters = ?t.layers, "sbc stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Control {
        /// Take every snapshot waiting in the channel, without blocking.
        fn poll(&mut self) {
            while let Ok(snap) = self.rx.try_recv() {
                self.absorb(snap);
            }
        }

        /// The latest snapshot of worker `worker`, if it has published.
        fn worker(&self, worker: u16) -> Option<&WorkerSnapshot> {
            self.latest.get(usize::from(worker))?.as_ref()
        }
    }

    fn layers(udp_rx: u64, live_calls: u64) -> Layers {
        let mut l = Layers::default();
        l.transport.udp_rx = udp_rx;
        l.b2bua.live_calls = live_calls;
        l
    }

    #[test]
    fn guard_commands_reach_every_worker_and_bans_are_listed() {
        use sbc_core::guard::{BanReason, GuardConfig};
        let (commands, rxs) = command_channels(2);
        let mut guards: Vec<Guard> = (0..2).map(|_| Guard::new(GuardConfig::default())).collect();
        let ip = "192.0.2.9".parse().unwrap();
        assert_eq!(commands.guard(GuardCommand::Ban { ip, secs: Some(60) }), 2);
        let now = Instant::now();
        // Each worker drains its own channel on its tick.
        let serve = |rxs: &[Receiver<WorkerCommand>], guards: &mut [Guard]| {
            for (i, (rx, g)) in rxs.iter().zip(guards.iter_mut()).enumerate() {
                drain_commands(rx, i as u16, now, &mut |r| r.serve(g));
            }
        };
        serve(&rxs, &mut guards);
        for g in &mut guards {
            let bans = g.bans(now);
            assert_eq!(bans.len(), 1);
            assert_eq!((bans[0].ip, bans[0].reason), (ip, BanReason::Manual));
        }
        // Listing: the workers answer on their tick (served here from another thread).
        let lister = {
            let commands = commands.clone();
            std::thread::spawn(move || commands.bans(Duration::from_secs(5)))
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while rxs.iter().any(|r| r.is_empty()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        serve(&rxs, &mut guards);
        let listed = lister.join().unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!((listed[0].0, listed[1].0), (0, 1));
        assert!(listed.iter().all(|(_, b)| b.len() == 1 && b[0].ip == ip));
        // Lifting it.
        commands.guard(GuardCommand::Unban { ip });
        serve(&rxs, &mut guards);
        assert!(guards.iter_mut().all(|g| g.bans(now).is_empty()));
    }

    #[test]
    fn rules_changes_reach_every_worker_and_not_the_guard() {
        let (commands, rxs) = command_channels(2);
        let cmd = RulesCommand::RemoveRule("premium".into());
        assert_eq!(commands.rules(&cmd), 2);
        for (i, rx) in rxs.iter().enumerate() {
            let mut got = Vec::new();
            let n = drain_commands(rx, i as u16, Instant::now(), &mut |r| {
                if let GuardRequest::Rules(c) = r {
                    got.push(c);
                }
            });
            assert_eq!((n, got.as_slice()), (1, std::slice::from_ref(&cmd)));
        }
    }

    #[test]
    fn a_full_command_channel_refuses_and_never_blocks() {
        let (commands, rxs) = command_channels(1);
        let ip = "192.0.2.9".parse().unwrap();
        let cmd = GuardCommand::Unban { ip };
        let taken: usize = (0..COMMANDS_PER_WORKER + 10)
            .map(|_| commands.guard(cmd))
            .sum();
        assert_eq!(taken, COMMANDS_PER_WORKER);
        // A worker applies at most COMMANDS_PER_TICK per tick.
        let mut g = Guard::new(sbc_core::guard::GuardConfig::default());
        let n = drain_commands(&rxs[0], 0, Instant::now(), &mut |r| r.serve(&mut g));
        assert_eq!(n, COMMANDS_PER_TICK.min(COMMANDS_PER_WORKER));
        assert_eq!(g.stats().guard_commands, n as u64);
        // Nobody listening: listing returns what answered (nothing), within the wait.
        assert!(commands.bans(Duration::from_millis(10)).is_empty());
    }

    #[test]
    fn two_workers_summed() {
        let (tx, rx) = channel(2);
        let now = Instant::now();
        let mut a = Publisher::new(0, tx.clone(), now);
        let mut b = Publisher::new(1, tx, now);
        a.publish(layers(10, 2), now);
        b.publish(layers(5, 1), now);
        let mut c = Control::new(2, rx);
        c.poll();
        let t = c.totals();
        assert_eq!(t.workers, 2);
        assert_eq!(t.layers.transport.udp_rx, 15);
        assert_eq!(t.layers.b2bua.live_calls, 3);
        assert_eq!(c.worker(1).map(|s| s.layers.transport.udp_rx), Some(5));
        assert_eq!(c.workers().count(), 2);
    }

    #[test]
    fn latest_snapshot_wins() {
        let (tx, rx) = channel(1);
        let now = Instant::now();
        let mut p = Publisher::new(0, tx, now);
        assert!(!p.due(now));
        assert!(p.due(now + PUBLISH_EVERY));
        p.publish(layers(1, 1), now + PUBLISH_EVERY);
        assert!(!p.due(now + PUBLISH_EVERY));
        p.publish(layers(4, 0), now + 2 * PUBLISH_EVERY);
        let mut c = Control::new(1, rx);
        c.poll();
        let s = c.worker(0).copied();
        assert_eq!(s.map(|s| (s.seq, s.last)), Some((2, false)));
        assert_eq!(c.totals().layers, layers(4, 0));
        // An older snapshot arriving late does not replace a newer one.
        if let Some(mut old) = s {
            old.seq = 1;
            old.layers = layers(99, 9);
            c.absorb(old);
        }
        assert_eq!(c.totals().layers, layers(4, 0));
    }

    #[test]
    fn full_channel_drops_and_counts() {
        let (tx, rx) = channel(1);
        let now = Instant::now();
        let mut p = Publisher::new(0, tx, now);
        for i in 0..QUEUE_PER_WORKER + 2 {
            p.publish(layers(i as u64, 0), now);
        }
        let mut c = Control::new(1, rx);
        c.poll();
        // Only the first QUEUE_PER_WORKER fitted; the last of them is the latest seen.
        assert_eq!(
            c.totals().layers.transport.udp_rx,
            QUEUE_PER_WORKER as u64 - 1
        );
        // The drops are reported by the next snapshot that gets through.
        p.publish(layers(7, 0), now);
        c.poll();
        assert_eq!(c.totals().layers.worker.snapshots_dropped, 2);
        assert_eq!(c.totals().layers.transport.udp_rx, 7);
    }

    #[test]
    fn run_ends_with_the_workers_last_snapshots() {
        let (tx, rx) = channel(2);
        let now = Instant::now();
        let a = Publisher::new(0, tx.clone(), now);
        let b = Publisher::new(1, tx, now);
        let control = std::thread::spawn(move || Control::new(2, rx).run());
        a.finish(layers(3, 0), now);
        b.finish(layers(4, 0), now);
        let c = control.join().map_err(|_| "control thread panicked");
        if let Ok(c) = &c {
            c.log_stopped();
        }
        let c = c.as_ref().map(Control::totals);
        assert_eq!(c.map(|t| t.layers.transport.udp_rx), Ok(7));
    }

    #[test]
    fn fraud_events_reach_the_control_thread_newest_kept() {
        let (tx, rx) = channel(1);
        let (alert_tx, alert_rx) = fraud_channel();
        let now = Instant::now();
        let p = Publisher::new(0, tx, now);
        let control =
            std::thread::spawn(move || Control::new(1, rx).with_fraud_events(alert_rx).run());
        let event = |n: u64| FraudEvent {
            rule: "intl".into(),
            account: "1001".into(),
            callee: "+88212345".into(),
            source: std::net::Ipv4Addr::LOCALHOST.into(),
            metric: sbc_core::guard::rules::Metric::SequentialCalls,
            value: n,
            threshold: 5,
            level: sbc_core::guard::rules::Level::Critical,
        };
        for n in 0..300 {
            alert_tx.send(event(n)).unwrap();
        }
        drop(alert_tx);
        p.finish(layers(1, 0), now);
        let c = control.join().unwrap();
        let kept: Vec<u64> = c.fraud_events().map(|e| e.value).collect();
        assert_eq!(kept.len(), FRAUD_EVENTS_KEPT);
        assert_eq!(kept.first(), Some(&(300 - FRAUD_EVENTS_KEPT as u64)));
        assert_eq!(kept.last(), Some(&299));
    }

    #[test]
    fn a_worker_past_the_expected_count_still_counts() {
        let (_tx, rx) = channel(1);
        let mut c = Control::new(1, rx);
        let mut p = Publisher::new(3, channel(1).0, Instant::now());
        c.absorb(p.snapshot(layers(2, 0), Instant::now(), false));
        assert_eq!(c.worker(3).map(|s| s.layers.transport.udp_rx), Some(2));
        assert_eq!(c.totals().workers, 1);
    }

    #[test]
    fn field_names_unique_across_layers() {
        // One flat namespace: the exit log is read by name, and metric names must not collide.
        let l = Layers::default();
        let mut names: Vec<&str> = l.transport.fields().iter().map(|f| f.name).collect();
        names.extend(l.sip.fields().iter().map(|f| f.name));
        names.extend(l.b2bua.fields().iter().map(|f| f.name));
        names.extend(l.media.fields().iter().map(|f| f.name));
        names.extend(l.guard.fields().iter().map(|f| f.name));
        names.extend(l.worker.fields().iter().map(|f| f.name));
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
    }

    #[test]
    fn exit_log_keeps_name_colon_value() {
        // The integration tests read `name: value` from the "sbc stopped" line.
        let t = format!("{:?}", layers(12, 3));
        assert!(t.contains(" udp_rx: 12"), "{t}");
        assert!(t.contains(" live_calls: 3"), "{t}");
        assert!(t.contains(" snapshots_dropped: 0"), "{t}");
    }
}
