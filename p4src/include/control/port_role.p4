/* Who may send what into the switch (the trust model). The controller writes every port's role from
 * the topology; this control looks the ingress port up and drops, each under its own reason, what
 * that port may not send:
 *   - NSH from anything but a switch link or a server (a host, the EMAC, a port without a role);
 *     what a server may send back is narrowed further to its own chains by the steering (server_return);
 *   - an EMAC answer from anything but the EMAC port;
 *   - plain IPv4 from the EMAC port, from a server port (a server is trusted with the functions it runs,
 *     which it returns in NSH, and with nothing more: plain IPv4 from it would pass the chains by), or
 *     from a host port with another source than the host's;
 *   - anything else: ARP, IPv6, VLAN tags, EMAC requests, unknown EtherTypes.
 * A pass after recirculation is the switch's own packet and keeps whatever it carries.
 */
#ifndef SREM_PORT_ROLE_P4
#define SREM_PORT_ROLE_P4

#include "../define.p4"
#include "../size.p4"
#include "../header.p4"
#include "drop.p4"

control PortRoles(inout headers_t hdr, inout metadata_t meta, in standard_metadata_t standard_metadata) {
    @name(".SremIngress.set_port_role")
    action set_port_role(bit<3> role) {
        meta.port_role = role;
    }

    /* A traffic host's port: the host's address is the only source it may send from. */
    @name(".SremIngress.host_port")
    action host_port(ipv4_addr_t host_addr) {
        meta.port_role = PORT_ROLE_HOST;
        meta.host_addr = host_addr;
    }

    @name(".SremIngress.port_role")
    table port_role {
        key = {
            standard_metadata.ingress_port : exact @name("port");
        }
        actions = { set_port_role; host_port; }
        const default_action = set_port_role(PORT_ROLE_NONE);
        size = PORT_ROLE_SIZE;
    }

    apply {
        if (meta.passes != 0) {
            meta.port_role = PORT_ROLE_RECIRCULATED;
        } else {
            port_role.apply();
        }
        if (meta.port_role == PORT_ROLE_NONE) {
            drop_with(meta, DROP_PORT_UNKNOWN);
        } else if (hdr.emac_response.isValid()) {
            if (meta.port_role != PORT_ROLE_EMAC) {
                drop_with(meta, DROP_EMAC_UNTRUSTED);
            }
        } else if (hdr.nsh.isValid()) {
            if (meta.port_role == PORT_ROLE_HOST || meta.port_role == PORT_ROLE_EMAC) {
                drop_with(meta, DROP_NSH_UNTRUSTED);
            }
        } else if (hdr.ipv4.isValid()) {
            if (meta.port_role == PORT_ROLE_EMAC) {
                drop_with(meta, DROP_UNHANDLED);
            } else if (meta.port_role == PORT_ROLE_SERVER) {
                drop_with(meta, DROP_SERVER_IPV4);
            } else if (meta.port_role == PORT_ROLE_HOST && hdr.ipv4.src_addr != meta.host_addr) {
                drop_with(meta, DROP_SPOOFED_SOURCE);
            }
        } else {
            drop_with(meta, DROP_UNHANDLED);
        }
    }
}

#endif
