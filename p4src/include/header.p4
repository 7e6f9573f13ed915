/* Headers and metadata of srem.p4. The byte layouts the controller, the EMAC and the testbed share
 * (NSH with the version TLV, EMAC request and response) are mirrored in srem_formats/wire.py; a test
 * checks the two agree.
 */
#ifndef SREM_HEADER_P4
#define SREM_HEADER_P4

#include "define.p4"

@controller_header("packet_in")
header packet_in_t {
    bit<9> ingress_port;
    bit<7> _pad;
}

@controller_header("packet_out")
header packet_out_t {
    bit<9> egress_port;
    bit<7> _pad;
}

header ethernet_t {
    mac_addr_t dst_addr;
    mac_addr_t src_addr;
    bit<16>    ether_type;
}

/* RFC 8300 base header and service path header. */
header nsh_t {
    bit<2>  version;
    bit<1>  oam;
    bit<1>  unassigned1;
    bit<6>  ttl;
    bit<6>  length;
    bit<4>  unassigned2;
    bit<4>  md_type;
    bit<8>  next_protocol;
    bit<24> spi;   /* service path id = the chain */
    bit<8>  si;    /* service index = functions left */
}

/* MD type 2 context (RFC 8300, 2.5.1): the configuration version the classifier stamped, so that
 * every switch steers the packet by the one configuration it entered with (per-packet consistency).
 * tlv_length counts the value's bytes: 4. */
header nsh_version_t {
    bit<16> md_class;
    bit<8>  tlv_type;
    bit<1>  unassigned;
    bit<7>  tlv_length;
    bit<32> config_version;
}

/* Switch -> EMAC: look this key up in the instance's external-memory rules. */
header emac_request_t {
    bit<16>     switch_id;
    bit<16>     instance;
    bit<8>      vnf_type;
    bit<16>     server;      /* memory server holding the region */
    bit<32>     region;
    bit<32>     rkey;
    bit<32>     seq;
    ipv4_addr_t src_addr;    /* the lookup key: the 5-tuple */
    ipv4_addr_t dst_addr;
    bit<8>      protocol;
    bit<16>     src_port;
    bit<16>     dst_port;
}

/* EMAC -> switch: the action of the matching rule and its data. The EMAC echoes the request's
 * switch, instance, type and sequence number; the switch applies an answer only when they and the
 * packet behind it (NSH, 5-tuple) match a request it sent and has not had answered (control/emac.p4). */
header emac_response_t {
    bit<16>     switch_id;
    bit<16>     instance;
    bit<8>      vnf_type;
    bit<32>     seq;
    bit<8>      status;
    bit<8>      action_code;
    ipv4_addr_t addr;
    bit<16>     port;
    bit<8>      dscp;        /* low 6 bits used */
    bit<16>     meter_index;
    bit<8>      flags;       /* bit 0: drop red (rate limiter) */
}

header ipv4_t {
    bit<4>      version;
    bit<4>      ihl;
    bit<6>      dscp;
    bit<2>      ecn;
    bit<16>     total_len;
    bit<16>     identification;
    bit<3>      flags;
    bit<13>     frag_offset;
    bit<8>      ttl;
    bit<8>      protocol;
    bit<16>     hdr_checksum;
    ipv4_addr_t src_addr;
    ipv4_addr_t dst_addr;
}

header tcp_t {
    bit<16> src_port;
    bit<16> dst_port;
    bit<32> seq_no;
    bit<32> ack_no;
    bit<4>  data_offset;
    bit<4>  res;
    bit<8>  flags;
    bit<16> window;
    bit<16> checksum;
    bit<16> urgent_ptr;
}

header udp_t {
    bit<16> src_port;
    bit<16> dst_port;
    bit<16> length;
    bit<16> checksum;
}

struct headers_t {
    packet_out_t    packet_out;
    packet_in_t     packet_in;
    ethernet_t      ethernet;
    emac_request_t  emac_request;
    emac_response_t emac_response;
    nsh_t           nsh;
    nsh_version_t   nsh_version;
    ipv4_t          ipv4;
    tcp_t           tcp;
    udp_t           udp;
}

struct metadata_t {
    bit<16>     switch_id;
    bit<3>      port_role;     /* PORT_ROLE_* of the ingress port */
    ipv4_addr_t host_addr;     /* a host port's host: the only source address it may send */
    bit<3>      step;
    bit<16>     instance;
    bit<8>      vnf_type;
    bit<16>     l4_src_port;
    bit<16>     l4_dst_port;
    bit<16>     l4_length;
    bit<1>      l4_rewritten;
    bit<1>      recirculate;
    bit<1>      egress_chosen; /* an action chose where the packet goes: without one it is dropped */
    bit<1>      dropped;
    bit<32>     drop_reason;
    bit<32>     emac_seq;      /* the EMAC request this pass sends */
    bit<16>     meter_base;    /* an EM rate limiter's meter cells: [meter_base, meter_base + meter_count) */
    bit<16>     meter_count;
    bit<1>      meter_valid;   /* a rule asked for its meter */
    bit<16>     meter_index;
    bit<2>      color;
    bit<6>      mark_dscp;
    bit<1>      drop_red;
    /* The fields a recirculated packet keeps (field list 0, control/recirculation.p4). `passes`: not
     * 0 marks a pass after recirculation, which no port can fake. `arrived`: when the packet came in
     * from a port - BMv2 does not set ingress_global_timestamp on a recirculated pass (it reads 0),
     * so an EMAC request sent from one is timed from here. */
    @field_list(0)
    bit<8>      passes;
    @field_list(0)
    bit<48>     arrived;
}

error { NshUnsupported }

#endif
