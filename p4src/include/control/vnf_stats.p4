/* Packets and bytes each VNF instance handled on this switch: processed here (LM or EM) or sent to
 * the server hosting it. Applied wherever that happens, so the one counter lives in a control of its
 * own. Instances come from the controller's entries, never from a packet; an instance beyond the
 * counter is not counted rather than counted out of bounds.
 */
#ifndef SREM_VNF_STATS_P4
#define SREM_VNF_STATS_P4

#include "../size.p4"

control VnfStats(in bit<16> instance) {
    @name(".SremIngress.vnf_counter")
    counter(VNF_COUNTER_SIZE, CounterType.packets_and_bytes) vnf_counter;

    apply {
        if ((bit<32>) instance < VNF_COUNTER_SIZE) {
            vnf_counter.count((bit<32>) instance);
        }
    }
}

#endif
