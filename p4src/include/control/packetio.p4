/* Packet I/O with the controller through the CPU port: a packet-out leaves on the port its header
 * names and skips the pipeline; a packet to the CPU port gets a packet-in header saying where it
 * came in.
 */
#ifndef SREM_PACKETIO_P4
#define SREM_PACKETIO_P4

#include "../define.p4"
#include "../header.p4"

control PacketIoIngress(inout headers_t hdr, inout standard_metadata_t standard_metadata) {
    apply {
        if (hdr.packet_out.isValid()) {
            standard_metadata.egress_spec = hdr.packet_out.egress_port;
            hdr.packet_out.setInvalid();
            exit;
        }
    }
}

control PacketIoEgress(inout headers_t hdr, in standard_metadata_t standard_metadata) {
    apply {
        if (standard_metadata.egress_port == CPU_PORT) {
            hdr.packet_in.setValid();
            hdr.packet_in.ingress_port = standard_metadata.ingress_port;
            hdr.packet_in._pad = 0;
        }
    }
}

#endif
