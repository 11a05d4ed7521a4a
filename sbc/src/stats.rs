//! The counters of one worker, per layer (transport, SIP, B2BUA, media, the worker itself), each
//! declared once with [`sbc_counters::counters!`]; the guard's layer is the core's
//! [`sbc_core::guard::GuardStats`], the call rules' [`sbc_core::guard::rules::RulesStats`]. A worker copies them into a
//! [`crate::control::WorkerSnapshot`] on its timer tick; the control thread sums them.

sbc_counters::counters! {
    /// What the worker's sockets did (the driver counts): SIP over UDP, TCP and TLS, and the media
    /// relay ports.
    pub(crate) struct Transport {
        /// SIP datagrams received.
        counter udp_rx,
        /// SIP datagrams sent.
        counter udp_tx,
        /// SIP datagrams the kernel refused to send.
        counter udp_send_errors,
        /// SIP datagrams dropped as longer than `transport.max_message_size`.
        counter udp_truncated,
        /// SIP receives that found no free buffer (io_uring buffer ring exhausted).
        counter udp_no_buffers,
        /// SIP datagrams that named a dialog or transaction of another worker, handed to it.
        counter handed_over,
        /// SIP datagrams for another worker dropped because its inbox was full.
        counter handover_dropped,
        /// SIP datagrams other workers handed to this one.
        counter handed_in,
        /// SIP messages framed on TCP and TLS connections.
        counter stream_rx_messages,
        /// CRLF keep-alives received on connections.
        counter keepalives,
        /// TCP and TLS connections accepted.
        counter tcp_accepted,
        /// TCP and TLS connections refused (over `transport.tcp_max_connections`, or accept failed).
        counter tcp_refused,
        /// Connections closed.
        counter tcp_closed,
        /// Connections closed for being idle longer than `transport.tcp_idle_timeout_secs`.
        counter tcp_idle_closed,
        /// Invalid messages on a connection (the connection is closed).
        counter framing_errors,
        /// TLS sessions that could not be set up, or that received a bad record.
        counter tls_errors,
        /// Accepted connections refused for their source address being over
        /// `transport.tcp_max_connections_per_source` (also in `tcp_refused`).
        counter tcp_source_refused,
        /// Times accepting paused for lack of file descriptors (or kernel memory).
        counter tcp_accept_paused,
        /// Connections the SBC tried to open toward TCP and TLS next hops.
        counter tcp_connects,
        /// Connections toward next hops that could not be opened (refused, unreachable, no slot;
        /// also in `tcp_connects` unless there was no slot).
        counter tcp_connect_failures,
        /// Connections closed because their connect or TLS handshake outlasted
        /// `transport.tls_handshake_timeout_secs`.
        counter tls_handshake_timeouts,
        /// Datagrams received on media relay ports.
        counter media_rx,
        /// Relayed media datagrams whose length to send was past the end of their buffer (dropped).
        counter media_bad_length,
        /// Media datagrams the kernel refused to send.
        counter media_send_errors,
        /// Media receives that found no free buffer (io_uring buffer ring exhausted).
        counter media_no_buffers,
    }
}

sbc_counters::counters! {
    /// What the SIP layer did with the messages it received, before the B2BUA.
    pub(crate) struct Sip {
        /// Messages that did not parse.
        counter parse_errors,
        /// Unparsable requests answered with a 4xx naming the fault.
        counter parse_errors_answered,
        /// Unparsable messages dropped without an answer.
        counter parse_errors_dropped,
        /// Out-of-dialog OPTIONS answered 200 statelessly.
        counter options_answered,
        /// Messages handed to the B2BUA.
        counter to_b2bua,
        /// Messages to send on a flow (connection or socket) that no longer exists.
        counter flow_unknown,
    }
}

sbc_counters::counters! {
    /// Calls, registrations and trunks of the worker's B2BUA.
    pub(crate) struct B2bua {
        /// Calls started.
        counter calls_started,
        /// Calls answered.
        counter calls_answered,
        /// Calls ended.
        counter calls_ended,
        /// Calls held now.
        gauge live_calls,
        /// REGISTER bindings held now.
        gauge live_registrations,
        /// The SBC's registrations (and refreshes) with carrier trunks that succeeded.
        counter trunk_registrations,
        /// Digest challenges to the SBC's trunk registrations, answered.
        counter trunk_register_challenges,
        /// The SBC's trunk registration attempts that failed (refused, timed out, credentials refused).
        counter trunk_register_failures,
        /// Trunk challenges to calls, answered with the trunk's credentials.
        counter trunk_auth_answered,
        /// Calls refused because the trunk refused the credentials (403 to the caller).
        counter trunk_auth_failures,
        /// New calls moved to the next target of their group after the first refused them or did not
        /// answer.
        counter call_failovers,
        /// Health probes (OPTIONS to targets) that failed.
        counter probes_failed,
        /// SIP INFO digits answered by the SBC and played as RFC 4733 events (`dtmf` modes).
        counter dtmf_info_to_events,
        /// SIP INFO digits answered by the SBC and played as in-band tones (G.711) toward an
        /// `inband` leg.
        counter dtmf_info_to_tones,
        /// RFC 4733 digits, and in-band digits heard in an `inband` leg's audio, sent on as SIP
        /// INFO.
        counter dtmf_events_to_info,
        /// DTMF INFOs refused: body malformed (400) or of a type the SBC does not read (415).
        counter dtmf_info_refused,
        /// DTMF digits dropped in the interworking (a queue full, the call gone).
        counter dtmf_dropped,
        /// Fraud log lines left out (more than 20 a second).
        counter fraud_logs_suppressed,
        /// Fraud events the control thread's channel had no room for.
        counter fraud_events_dropped,
        /// SIP transactions held now.
        gauge live_transactions,
        /// SIP requests and responses sent again (retransmission timers, answers to retransmitted
        /// requests).
        counter retransmissions_sent,
        /// SIP requests received again for a live transaction (ACKs left out).
        counter retransmissions_received,
        /// Call records the CDR writer's queue had no room for (`cdr.queue`).
        counter cdr_dropped,
        /// Webhook events the events queue had no room for (`events.queue`).
        counter events_dropped,
    }
}

sbc_counters::counters! {
    /// The worker's media relay: the shard's packets, the anchoring of SDP, rtpengine ng control.
    pub(crate) struct Media {
        /// Media datagrams relayed.
        counter media_forwarded,
        /// Media bytes relayed.
        counter media_forwarded_bytes,
        /// Media datagrams dropped, for any reason.
        counter media_dropped,
        /// SDP bodies rewritten to anchor media.
        counter media_sdp_rewritten,
        /// SDP offers refused (the request got 400/488/503).
        counter media_offers_refused,
        /// Calls ended because their media stopped.
        counter media_no_media_ends,
        /// One-way media episodes seen.
        counter media_one_way,
        /// Audio frames transcoded from one codec into another.
        counter media_transcoded_frames,
        /// DTMF events: RFC 4733 relayed between legs, played as tones, detected in-band.
        counter media_dtmf_events,
        /// Streams whose answer made the SBC transcode (`[codecs] transcode_to`).
        counter media_transcoded_streams,
        /// Media sessions held now.
        gauge media_sessions,
        /// Relay port pairs in use now.
        gauge media_ports_in_use,
        /// Relay port pairs free now (quarantined pairs not counted).
        gauge media_ports_free,
        /// rtpengine ng control requests handled.
        counter ng_requests,
        /// rtpengine ng control requests answered with an error.
        counter ng_errors,
        /// rtpengine ng datagrams dropped: their source is not in `media.ng_allowed`.
        counter ng_refused,
        /// `m=` lines of unanswered calls written with port 0 (`media.early_streams`).
        counter media_early_streams_refused,
        /// New calls refused (503): their source held its share of relay ports in unanswered
        /// calls (`media.early_pairs_per_source`).
        counter media_early_source_refused,
        /// Media sessions of calls never answered, released without quarantine.
        counter media_released_unanswered,
        /// Sessions taken for offers that added `m=` lines, released because the offer failed.
        counter media_pending_discarded,
        /// Idle scans that found a call on hold without media and left it up.
        counter media_held_kept,
        /// SRTP/SRTCP packets dropped: their authentication tag did not verify.
        counter media_srtp_auth_failures,
        /// SRTP/SRTCP packets dropped as replays.
        counter media_srtp_replays,
        /// SRTP/SRTCP packets that passed an SRTP stage (unprotected, protected, or both).
        counter media_srtp_packets,
        /// SRTP/SRTCP packets an SRTP stage refused as too short or not RTP/RTCP.
        counter media_srtp_malformed,
        /// Packets an SRTP stage could not protect for lack of room for the tag.
        counter media_srtp_no_room,
        /// SRTP/SRTCP packets refused because their key's lifetime was used up.
        counter media_srtp_key_expired,
        /// Packets refused because the offer/answer had not settled the leg's SRTP keys yet (media
        /// before the answer on a stream offered SRTP).
        counter media_srtp_no_key,
        /// Offers refused for SRTP (no usable `a=crypto`, MKI, keys kept off a side without TLS).
        counter media_srtp_refused,
        /// SRTP stages given to the relay (a leg's keys set or changed).
        counter media_srtp_stages,
        /// RFC 4733 events relayed between legs with telephone-event (each event once).
        counter media_dtmf_relayed,
        /// RFC 4733 events played as in-band tones toward a leg without telephone-event.
        counter media_dtmf_generated,
        /// In-band digits detected (G.711, G.722 or Opus senders) and sent as RFC 4733 events.
        counter media_dtmf_detected,
        /// Packets a codec stage sent beyond one per packet received (repacketised to a shorter
        /// packet time, 30 ms in and 20 ms out).
        counter media_repacketised_packets,
    }
}

sbc_counters::counters! {
    /// The worker's own bookkeeping.
    pub(crate) struct WorkerStats {
        /// Snapshots not delivered to the control thread because its channel was full.
        counter snapshots_dropped,
    }
}
