/* Checksums: nothing is verified on the way in (a switch forwards what it got); on the way out, the
 * IPv4 header checksum always (TTL and DSCP change) and TCP's over its payload only when the NAT
 * rewrote the destination; UDP's is zeroed on rewrite instead (allowed over IPv4). */
#ifndef SREM_CHECKSUM_P4
#define SREM_CHECKSUM_P4

#include "../define.p4"
#include "../header.p4"

control SremVerifyChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply { }
}

control SremComputeChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply {
        update_checksum(hdr.ipv4.isValid(),
            { hdr.ipv4.version, hdr.ipv4.ihl, hdr.ipv4.dscp, hdr.ipv4.ecn, hdr.ipv4.total_len,
              hdr.ipv4.identification, hdr.ipv4.flags, hdr.ipv4.frag_offset, hdr.ipv4.ttl,
              hdr.ipv4.protocol, hdr.ipv4.src_addr, hdr.ipv4.dst_addr },
            hdr.ipv4.hdr_checksum, HashAlgorithm.csum16);
        update_checksum_with_payload(hdr.tcp.isValid() && meta.l4_rewritten == 1,
            { hdr.ipv4.src_addr, hdr.ipv4.dst_addr, 8w0, hdr.ipv4.protocol, meta.l4_length,
              hdr.tcp.src_port, hdr.tcp.dst_port, hdr.tcp.seq_no, hdr.tcp.ack_no, hdr.tcp.data_offset,
              hdr.tcp.res, hdr.tcp.flags, hdr.tcp.window, hdr.tcp.urgent_ptr },
            hdr.tcp.checksum, HashAlgorithm.csum16);
    }
}

#endif
