/* Functions whose rules are in external memory (EM): the switch holds only where they live (the
 * rdma_index), sends the packet to the EMAC with a request header in front of its NSH, and gets it
 * back with a response header carrying the rule's action, which Vnfs applies. The request carries
 * the location, so the EMAC needs no copy of the switch's placement.
 */
#ifndef SREM_EMAC_P4
#define SREM_EMAC_P4

#include "../define.p4"
#include "../size.p4"
#include "../header.p4"
#include "drop.p4"

control EmacRequest(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t standard_metadata) {
    /* Numbers the requests; the EMAC echoes it in the response, for matching them up in logs. */
    @name(".SremIngress.emac_sequence")
    register<bit<32>>(EMAC_SEQUENCE_SIZE) emac_sequence;

    @name(".SremIngress.em_lookup")
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
    }
}

/* After Vnfs applied the response: the packet is an NSH packet again, one function further. */
control EmacResponse(inout headers_t hdr) {
    apply {
        hdr.emac_response.setInvalid();
        hdr.ethernet.ether_type = ETHERTYPE_NSH;
        hdr.nsh.si = hdr.nsh.si - 1;
    }
}

#endif
