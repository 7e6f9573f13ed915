/* Parser and deparser: Ethernet, then IPv4, NSH (RFC 8300, MD type 2 with the version TLV), or an
 * EMAC response in front of NSH. Anything else stops at Ethernet (the ingress drops it as unhandled);
 * an NSH other than the one SR-EM sends - another version, an OAM packet (the O bit: RFC 8300, 2.2,
 * "SHOULD discard" without OAM support), MD type 1, another length, next protocol, metadata class,
 * TLV type or TLV length - is rejected and the ingress drops it (parser_error). */
#ifndef SREM_PARSER_P4
#define SREM_PARSER_P4

#include "define.p4"
#include "header.p4"

parser SremParser(packet_in packet, out headers_t hdr, inout metadata_t meta,
                  inout standard_metadata_t standard_metadata) {
    state start {
        transition select(standard_metadata.ingress_port) {
            CPU_PORT: parse_packet_out;
            default: parse_ethernet;
        }
    }

    state parse_packet_out {
        packet.extract(hdr.packet_out);
        transition parse_ethernet;
    }

    state parse_ethernet {
        packet.extract(hdr.ethernet);
        transition select(hdr.ethernet.ether_type) {
            ETHERTYPE_IPV4: parse_ipv4;
            ETHERTYPE_NSH: parse_nsh;
            ETHERTYPE_EMAC_RESPONSE: parse_emac_response;
            default: accept;
        }
    }

    state parse_emac_response {
        packet.extract(hdr.emac_response);
        transition parse_nsh;
    }

    state parse_nsh {
        packet.extract(hdr.nsh);
        verify(hdr.nsh.version == 0 && hdr.nsh.oam == 0 && hdr.nsh.md_type == NSH_MD_TYPE_2
               && hdr.nsh.length == NSH_LENGTH_WORDS && hdr.nsh.next_protocol == NSH_NEXT_PROTO_IPV4,
               error.NshUnsupported);
        packet.extract(hdr.nsh_version);
        verify(hdr.nsh_version.md_class == NSH_MD_CLASS_SREM && hdr.nsh_version.tlv_type == NSH_TLV_CONFIG_VERSION
               && hdr.nsh_version.tlv_length == NSH_TLV_VERSION_LENGTH, error.NshUnsupported);
        transition parse_ipv4;
    }

    state parse_ipv4 {
        packet.extract(hdr.ipv4);
        meta.l4_length = hdr.ipv4.total_len - ((bit<16>) hdr.ipv4.ihl << 2);
        transition select(hdr.ipv4.ihl, hdr.ipv4.frag_offset, hdr.ipv4.protocol) {
            (5, 0, IP_PROTO_TCP): parse_tcp;
            (5, 0, IP_PROTO_UDP): parse_udp;
            default: accept;
        }
    }

    state parse_tcp {
        packet.extract(hdr.tcp);
        meta.l4_src_port = hdr.tcp.src_port;
        meta.l4_dst_port = hdr.tcp.dst_port;
        transition accept;
    }

    state parse_udp {
        packet.extract(hdr.udp);
        meta.l4_src_port = hdr.udp.src_port;
        meta.l4_dst_port = hdr.udp.dst_port;
        transition accept;
    }
}

control SremDeparser(packet_out packet, in headers_t hdr) {
    apply {
        packet.emit(hdr.packet_in);
        packet.emit(hdr.ethernet);
        packet.emit(hdr.emac_request);
        packet.emit(hdr.emac_response);
        packet.emit(hdr.nsh);
        packet.emit(hdr.nsh_version);
        packet.emit(hdr.ipv4);
        packet.emit(hdr.tcp);
        packet.emit(hdr.udp);
    }
}

#endif
