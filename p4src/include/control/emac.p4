/* Functions whose rules are in external memory (EM): the switch holds only where they live (the
 * rdma_index), sends the packet to the EMAC with a request header in front of its NSH, and gets it
 * back with an answer header carrying the rule's action, which Vnfs applies. The request carries
 * the location, so the EMAC needs no copy of the switch's placement.
 *
 * The switch remembers what it asked and applies an answer only if it matches a request of its own
 * that is still waiting: one slot per sequence number modulo EMAC_PENDING_SIZE holds the request
 * (sequence number, instance, function type, the packet's NSH and 5-tuple), the instance's meter
 * cells, when it was sent and whether it is still open. The function type, and so the actions an
 * answer may carry, and the meter cells it may use come from that slot, never from the answer. An
 * answer matching no request is unsolicited; one to a request answered already is a duplicate; one
 * after EMAC_ANSWER_TIMEOUT_US is late: each is dropped and counted. Slots are reused as sequence
 * numbers come round, so a request never answered costs nothing after that.
 *
 * The slots are registers of SremIngress, given to both controls here as constructor arguments.
 */
#ifndef SREM_EMAC_P4
#define SREM_EMAC_P4

#include "../define.p4"
#include "../size.p4"
#include "../header.p4"
#include "drop.p4"

/* A request as its slot holds it: sequence number, instance, function type, SPI, SI, version and
 * the 5-tuple (32 + 16 + 8 + 24 + 8 + 32 + 104 bits). */
typedef bit<224> emac_asked_t;

control EmacRequest(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t standard_metadata)
                   (register<emac_asked_t> pending_request, register<bit<32>> pending_meters,
                    register<bit<48>> pending_since, register<bit<1>> pending_open) {
    /* Numbers the requests; the EMAC echoes it in the answer, which is matched by it. */
    @name(".SremIngress.emac_sequence")
    register<bit<32>>(EMAC_SEQUENCE_SIZE) emac_sequence;

    /* meter_base and meter_count: the instance's meter cells (a rate limiter's; 0 and 0 otherwise). */
    @name(".SremIngress.em_lookup")
    action em_lookup(bit<16> server, bit<32> region, bit<32> rkey, bit<9> emac_port, bit<16> meter_base,
                     bit<16> meter_count) {
        bit<32> seq;
        emac_sequence.read(seq, 0);
        emac_sequence.write(0, seq + 1);
        hdr.emac_request.setValid();
        hdr.emac_request.switch_id = meta.switch_id;
        hdr.emac_request.instance = meta.instance;
        hdr.emac_request.vnf_type = meta.vnf_type;
        hdr.emac_request.server = server;
        hdr.emac_request.region = region;
        hdr.emac_request.rkey = rkey;
        hdr.emac_request.seq = seq;
        hdr.emac_request.src_addr = hdr.ipv4.src_addr;
        hdr.emac_request.dst_addr = hdr.ipv4.dst_addr;
        hdr.emac_request.protocol = hdr.ipv4.protocol;
        hdr.emac_request.src_port = meta.l4_src_port;
        hdr.emac_request.dst_port = meta.l4_dst_port;
        hdr.ethernet.ether_type = ETHERTYPE_EMAC_REQUEST;
        standard_metadata.egress_spec = emac_port;
        meta.egress_chosen = 1;
        meta.emac_seq = seq;
        meta.meter_base = meter_base;
        meta.meter_count = meter_count;
    }

    @name(".SremIngress.rdma_index_miss")
    action rdma_index_miss() {
        drop_with(meta, DROP_RDMA_INDEX_MISS);
    }

    /* Where an EM-hosted instance's rules live: memory server, region, remote key, EMAC port. */
    @name(".SremIngress.rdma_index")
    table rdma_index {
        key = {
            meta.instance : exact @name("instance");
        }
        actions = { em_lookup; rdma_index_miss; }
        const default_action = rdma_index_miss();
        size = RDMA_INDEX_SIZE;
    }

    apply {
        rdma_index.apply();
        if (hdr.emac_request.isValid()) {
            bit<32> slot = meta.emac_seq & (EMAC_PENDING_SIZE - 1);
            pending_request.write(slot, meta.emac_seq ++ meta.instance ++ meta.vnf_type ++ hdr.nsh.spi ++ hdr.nsh.si
                                        ++ hdr.nsh_version.config_version ++ hdr.ipv4.src_addr ++ hdr.ipv4.dst_addr
                                        ++ hdr.ipv4.protocol ++ meta.l4_src_port ++ meta.l4_dst_port);
            pending_meters.write(slot, meta.meter_base ++ meta.meter_count);
            pending_since.write(slot, meta.arrived);
            pending_open.write(slot, 1);
        }
    }
}

/* An answer from the EMAC port (PortRoles drops the others): applied only if it matches an open
 * request of this switch; then the pass goes on with STEP_EMAC_ANSWER and the request's instance,
 * type and meter cells. */
control EmacAnswer(inout headers_t hdr, inout metadata_t meta, in standard_metadata_t standard_metadata)
                  (register<emac_asked_t> pending_request, register<bit<32>> pending_meters,
                   register<bit<48>> pending_since, register<bit<1>> pending_open) {
    apply {
        bit<32> slot = hdr.emac_response.seq & (EMAC_PENDING_SIZE - 1);
        emac_asked_t asked;
        bit<1> open;
        bit<48> since;
        pending_request.read(asked, slot);
        pending_open.read(open, slot);
        pending_since.read(since, slot);
        emac_asked_t answered = hdr.emac_response.seq ++ hdr.emac_response.instance ++ hdr.emac_response.vnf_type
                                ++ hdr.nsh.spi ++ hdr.nsh.si ++ hdr.nsh_version.config_version ++ hdr.ipv4.src_addr
                                ++ hdr.ipv4.dst_addr ++ hdr.ipv4.protocol ++ meta.l4_src_port ++ meta.l4_dst_port;
        if (hdr.emac_response.switch_id != meta.switch_id || answered != asked) {
            drop_with(meta, DROP_EMAC_UNSOLICITED);
        } else if (open == 0) {
            drop_with(meta, DROP_EMAC_DUPLICATE);
        } else {
            pending_open.write(slot, 0);
            if (standard_metadata.ingress_global_timestamp - since > EMAC_ANSWER_TIMEOUT_US) {
                drop_with(meta, DROP_EMAC_LATE);
            } else {
                bit<32> meters;
                pending_meters.read(meters, slot);
                meta.instance = asked[191:176];
                meta.vnf_type = asked[175:168];
                meta.meter_base = meters[31:16];
                meta.meter_count = meters[15:0];
                meta.step = STEP_EMAC_ANSWER;
            }
        }
    }
}

/* After Vnfs applied the answer: the packet is an NSH packet again, one function further. */
control EmacAnswerDone(inout headers_t hdr) {
    apply {
        hdr.emac_response.setInvalid();
        hdr.ethernet.ether_type = ETHERTYPE_NSH;
        hdr.nsh.si = hdr.nsh.si - 1;
    }
}

#endif
