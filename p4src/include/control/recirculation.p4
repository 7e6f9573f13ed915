/* One function per pass: after a function processed in local memory, the packet goes round through
 * the switch again for the next one, keeping only its pass count (which bounds the rounds).
 */
#ifndef SREM_RECIRCULATION_P4
#define SREM_RECIRCULATION_P4

#include "../header.p4"

control RecirculationIngress(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t standard_metadata) {
    apply {
        hdr.nsh.si = hdr.nsh.si - 1;
        meta.recirculate = 1;
        meta.passes = meta.passes + 1;
        /* Any real port: the packet goes round instead of out (RecirculationEgress). */
        standard_metadata.egress_spec = standard_metadata.ingress_port;
        meta.egress_chosen = 1;
    }
}

control RecirculationEgress() {
    apply {
        recirculate_preserving_field_list(0);
    }
}

#endif
