/* Plain IPv4 forwarding: everything that is not (or no longer) a chain's packet. A router's TTL
 * rule: a packet that would leave with TTL 0 (it came with 0 or 1) is dropped instead; every hop
 * rewrites the destination MAC to the next hop's. */
#ifndef SREM_FORWARDING_P4
#define SREM_FORWARDING_P4

#include "../define.p4"
#include "../size.p4"
#include "../header.p4"
#include "drop.p4"

control Forwarding(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t standard_metadata) {
    @name(".SremIngress.route")
    action route(bit<9> port, mac_addr_t dst_mac) {
        standard_metadata.egress_spec = port;
        hdr.ethernet.dst_addr = dst_mac;
        hdr.ipv4.ttl = hdr.ipv4.ttl - 1;
        meta.egress_chosen = 1;
    }

    @name(".SremIngress.punt")
    action punt() {
        standard_metadata.egress_spec = CPU_PORT;
        meta.egress_chosen = 1;
    }

    @name(".SremIngress.no_route")
    action no_route() {
        drop_with(meta, DROP_NO_ROUTE);
    }

    /* Not const: the controller may send misses to itself (punt) or a default route instead. */
    @name(".SremIngress.ipv4_lpm")
    table ipv4_lpm {
        key = {
            hdr.ipv4.dst_addr : lpm @name("dst_addr");
        }
        actions = { route; punt; no_route; }
        default_action = no_route();
        size = IPV4_LPM_SIZE;
    }

    apply {
        if (hdr.ipv4.ttl <= 1) {
            drop_with(meta, DROP_IPV4_TTL);
        } else {
            ipv4_lpm.apply();
        }
    }
}

#endif
