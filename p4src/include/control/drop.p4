/* Dropping a packet: any control marks it with drop_with and the reason; Drop, last in the ingress,
 * counts the reason and drops it. Marking instead of dropping at once lets the rest of the pass see
 * that the packet is gone (nothing forwards it) and gives every drop one place to be counted. A
 * packet no action chose an egress for is dropped here as unhandled, never sent to port 0.
 */
#ifndef SREM_DROP_P4
#define SREM_DROP_P4

#include "../define.p4"
#include "../size.p4"
#include "../header.p4"

action drop_with(inout metadata_t meta, in bit<32> reason) {
    meta.dropped = 1;
    meta.drop_reason = reason;
}

control Drop(inout metadata_t meta, inout standard_metadata_t standard_metadata) {
    @name(".SremIngress.drop_counter")
    counter(DROP_COUNTER_SIZE, CounterType.packets) drop_counter;

    apply {
        if (meta.dropped == 0 && meta.egress_chosen == 0) {
            drop_with(meta, DROP_UNHANDLED);
        }
        if (meta.dropped == 1) {
            drop_counter.count(meta.drop_reason);
            mark_to_drop(standard_metadata);
        }
    }
}

#endif
