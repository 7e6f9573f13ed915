/* srem.p4: the SR-EM data plane on v1model (BMv2 simple_switch_grpc).
 *
 * A packet of a service function chain is classified at the chain's source switch, which pushes
 * NSH (SPI = chain, SI = functions left) with the configuration version in an MD type 2 TLV. Every
 * switch then steers on (SPI, SI, version): it processes the next function itself (its rules in
 * local memory, LM), asks the EMAC for the rule (rules in external memory, EM: the request leaves on
 * the EMAC port and comes back as a response), sends the packet to the server hosting the function,
 * or forwards it toward the next switch. The chain's last switch pops NSH. Everything else, and the
 * chain's packets after it, take plain IPv4 forwarding.
 *
 * One function is processed per pass; a packet whose next function is also here recirculates.
 */
#include <core.p4>
#include <v1model.p4>

#include "include/headers.p4"
#include "include/parser.p4"
#include "include/vnfs.p4"

control SremIngress(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t standard_metadata) {
    counter(MAX_CHAINS, CounterType.packets_and_bytes) chain_counter;
    counter(MAX_INSTANCES, CounterType.packets_and_bytes) vnf_counter;
    counter(DROP_REASONS, CounterType.packets) drop_counter;
    register<bit<32>>(1) emac_sequence;

    Vnfs() vnfs;

    action drop_with(bit<32> reason) {
        meta.dropped = 1;
        meta.drop_reason = reason;
    }

    action set_switch_id(bit<16> switch_id) {
        meta.switch_id = switch_id;
    }

    /* Keyless: its default action, written by the controller, tells the switch who it is. */
    table switch_identity {
        actions = { set_switch_id; }
        default_action = set_switch_id(0);
    }

    action push_nsh(bit<24> spi, bit<8> si, bit<32> config_version) {
        hdr.nsh.setValid();
        hdr.nsh.version = 0;
        hdr.nsh.oam = 0;
        hdr.nsh.unassigned1 = 0;
        hdr.nsh.ttl = NSH_INITIAL_TTL;
        hdr.nsh.length = NSH_LENGTH_WORDS;
        hdr.nsh.unassigned2 = 0;
        hdr.nsh.md_type = NSH_MD_TYPE_2;
        hdr.nsh.next_protocol = NSH_NEXT_PROTO_IPV4;
        hdr.nsh.spi = spi;
        hdr.nsh.si = si;
        hdr.nsh_version.setValid();
        hdr.nsh_version.md_class = NSH_MD_CLASS_SREM;
        hdr.nsh_version.tlv_type = NSH_TLV_CONFIG_VERSION;
        hdr.nsh_version.unassigned = 0;
        hdr.nsh_version.tlv_length = 4;
        hdr.nsh_version.config_version = config_version;
        hdr.ethernet.ether_type = ETHERTYPE_NSH;
        chain_counter.count((bit<32>) spi);
    }

    /* Admission control in the data plane: the policy rejected this chain's request. */
    action reject_chain(bit<24> spi) {
        chain_counter.count((bit<32>) spi);
        drop_with(DROP_CHAIN_REJECTED);
    }

    /* Which chain a packet belongs to; installed at the chain's source switch only. */
    table nsh_classifier {
        key = {
            hdr.ipv4.src_addr : ternary @name("src_addr");
            hdr.ipv4.dst_addr : ternary @name("dst_addr");
            hdr.ipv4.protocol : ternary @name("protocol");
            meta.l4_dst_port  : ternary @name("dst_port");
        }
        actions = { push_nsh; reject_chain; NoAction; }
        default_action = NoAction();
        size = 4096;
    }

    /* NSH's TTL counts service function forwarder hops (RFC 8300, 2.2). */
    action forward(bit<9> port) {
        standard_metadata.egress_spec = port;
        hdr.nsh.ttl = hdr.nsh.ttl - 1;
    }

    action to_server(bit<9> port, mac_addr_t server_mac, bit<16> instance) {
        standard_metadata.egress_spec = port;
        hdr.ethernet.dst_addr = server_mac;
        hdr.nsh.ttl = hdr.nsh.ttl - 1;
        vnf_counter.count((bit<32>) instance);
    }

    action process_lm(bit<16> instance, bit<8> vnf_type) {
        meta.step = STEP_PROCESS_LM;
        meta.instance = instance;
        meta.vnf_type = vnf_type;
    }

    action process_em(bit<16> instance, bit<8> vnf_type) {
        meta.step = STEP_PROCESS_EM;
        meta.instance = instance;
        meta.vnf_type = vnf_type;
    }

    action chain_end() {
        meta.step = STEP_CHAIN_END;
    }

    action steer_miss() {
        drop_with(DROP_STEER_MISS);
    }

    /* Service function forwarding: what this switch does for the chain's next function. */
    table nsh_steer {
        key = {
            hdr.nsh.spi                    : exact @name("spi");
            hdr.nsh.si                     : exact @name("si");
            hdr.nsh_version.config_version : exact @name("config_version");
        }
        actions = { forward; to_server; process_lm; process_em; chain_end; steer_miss; }
        default_action = steer_miss();
        size = 16384;
    }

    /* RDMA table: where the rules of an EM-hosted instance live. The request carries the location,
     * so the EMAC needs no copy of the switch's placement. */
    action em_lookup(bit<16> server, bit<32> region, bit<32> rkey, bit<9> emac_port) {
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
    }

    action rdma_index_miss() {
        drop_with(DROP_RDMA_INDEX_MISS);
    }

    table rdma_index {
        key = {
            meta.instance : exact @name("instance");
        }
        actions = { em_lookup; rdma_index_miss; }
        default_action = rdma_index_miss();
        size = 4096;
    }

    action route(bit<9> port, mac_addr_t dst_mac) {
        standard_metadata.egress_spec = port;
        hdr.ethernet.dst_addr = dst_mac;
        hdr.ipv4.ttl = hdr.ipv4.ttl - 1;
    }

    action punt() {
        standard_metadata.egress_spec = CPU_PORT;
    }

    action no_route() {
        drop_with(DROP_NO_ROUTE);
    }

    table ipv4_lpm {
        key = {
            hdr.ipv4.dst_addr : lpm @name("dst_addr");
        }
        actions = { route; punt; no_route; }
        default_action = no_route();
        size = 4096;
    }

    action pop_nsh() {
        hdr.nsh.setInvalid();
        hdr.nsh_version.setInvalid();
        hdr.ethernet.ether_type = ETHERTYPE_IPV4;
    }

    apply {
        if (hdr.packet_out.isValid()) {
            standard_metadata.egress_spec = hdr.packet_out.egress_port;
            hdr.packet_out.setInvalid();
            return;
        }
        if (standard_metadata.parser_error != error.NoError) {
            drop_with(DROP_PARSER);
        } else {
            switch_identity.apply();
            meta.step = STEP_NONE;
            if (hdr.emac_response.isValid()) {
                /* A function done in EM: apply its action, then on to the next one. */
                meta.instance = hdr.emac_response.instance;
                vnfs.apply(hdr, meta, standard_metadata);
                vnf_counter.count((bit<32>) hdr.emac_response.instance);
                hdr.emac_response.setInvalid();
                hdr.ethernet.ether_type = ETHERTYPE_NSH;
                hdr.nsh.si = hdr.nsh.si - 1;
            } else if (!hdr.nsh.isValid() && hdr.ipv4.isValid()) {
                nsh_classifier.apply();
            }
        }
        if (meta.dropped == 0 && hdr.nsh.isValid()) {
            if (hdr.nsh.ttl == 0) {
                drop_with(DROP_NSH_TTL);
            } else if (meta.passes >= MAX_PASSES) {
                drop_with(DROP_PASSES);
            } else {
                nsh_steer.apply();
            }
            if (meta.step == STEP_PROCESS_LM) {
                vnfs.apply(hdr, meta, standard_metadata);
                vnf_counter.count((bit<32>) meta.instance);
                hdr.nsh.si = hdr.nsh.si - 1;
                meta.recirculate = 1;
                meta.passes = meta.passes + 1;
                /* Any real port: the packet goes round instead of out (SremEgress). */
                standard_metadata.egress_spec = standard_metadata.ingress_port;
            } else if (meta.step == STEP_PROCESS_EM) {
                rdma_index.apply();
            } else if (meta.step == STEP_CHAIN_END) {
                pop_nsh();
            }
        }
        if (meta.dropped == 0 && !hdr.nsh.isValid() && !hdr.emac_response.isValid() && hdr.ipv4.isValid()) {
            ipv4_lpm.apply();
        }
        if (meta.dropped == 1) {
            drop_counter.count(meta.drop_reason);
            mark_to_drop(standard_metadata);
        }
    }
}

control SremEgress(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t standard_metadata) {
    apply {
        if (meta.recirculate == 1) {
            recirculate_preserving_field_list(0);
        } else if (standard_metadata.egress_port == CPU_PORT) {
            hdr.packet_in.setValid();
            hdr.packet_in.ingress_port = standard_metadata.ingress_port;
            hdr.packet_in._pad = 0;
        }
    }
}

V1Switch(SremParser(), SremVerifyChecksum(), SremIngress(), SremEgress(), SremComputeChecksum(), SremDeparser()) main;
