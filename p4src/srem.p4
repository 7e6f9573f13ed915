/* srem.p4: the SR-EM data plane on v1model (BMv2 simple_switch_grpc).
 *
 * A packet of a service function chain is classified at the chain's source switch, which pushes
 * NSH (SPI = chain, SI = functions left) with the configuration version in an MD type 2 TLV. Every
 * switch then steers on (SPI, SI, version): it processes the next function itself (its rules in
 * local memory, LM), asks the EMAC for the rule (rules in external memory, EM: the request leaves on
 * the EMAC port and comes back as an answer), sends the packet to the server hosting the function,
 * or forwards it toward the next switch. The chain's last switch pops NSH. Everything else, and the
 * chain's packets after it, take plain IPv4 forwarding. One function is processed per pass; a packet
 * whose next function is also here recirculates.
 *
 * The switch trusts no host: every port has a role the controller writes from the topology (host,
 * switch link, server, EMAC, CPU), and a frame is taken only for what its port may send
 * (control/port_role.p4): NSH from links and, for their own chains, from servers; EMAC answers from
 * the EMAC port, and only those that match a request the switch sent (control/emac.p4); plain IPv4
 * from hosts with their own source address and from links, never from a server. Whatever is dropped is counted by its reason
 * (drop_counter), and no packet leaves without an action having chosen its port.
 *
 * This file only wires the controls of include/control/ (one concern per file) and holds the state
 * two of them share; constants are in include/define.p4, every size in include/size.p4, headers in
 * include/header.p4. Every table, action, counter, meter and register the controller addresses
 * carries its P4Info name in an absolute @name (".SremIngress.nsh_steer"), the names
 * controller/dataplane/entries.py resolves, so that which control holds an object is not part of
 * the controller's interface.
 */
#include <core.p4>
#include <v1model.p4>

#include "include/define.p4"
#include "include/size.p4"
#include "include/header.p4"
#include "include/parser.p4"
#include "include/control/checksum.p4"
#include "include/control/classifier.p4"
#include "include/control/drop.p4"
#include "include/control/emac.p4"
#include "include/control/forwarding.p4"
#include "include/control/identity.p4"
#include "include/control/packetio.p4"
#include "include/control/port_role.p4"
#include "include/control/recirculation.p4"
#include "include/control/steering.p4"
#include "include/control/vnf_stats.p4"
#include "include/control/vnfs.p4"

control SremIngress(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t standard_metadata) {
    /* The EMAC requests waiting for an answer (control/emac.p4): EmacRequest fills a slot, EmacAnswer
     * matches an answer to it and closes it. */
    @name(".SremIngress.emac_pending_request")
    register<emac_asked_t>(EMAC_PENDING_SIZE) emac_pending_request;
    @name(".SremIngress.emac_pending_meters")
    register<bit<32>>(EMAC_PENDING_SIZE) emac_pending_meters;
    @name(".SremIngress.emac_pending_since")
    register<bit<48>>(EMAC_PENDING_SIZE) emac_pending_since;
    @name(".SremIngress.emac_pending_open")
    register<bit<1>>(EMAC_PENDING_SIZE) emac_pending_open;
    /* The rate limiters' meters, one per rule, whether the rule is in LM or in EM. */
    @name(".SremIngress.vnfs.flow_meter")
    meter(FLOW_METER_SIZE, MeterType.bytes) flow_meter;

    PacketIoIngress() packet_io_ingress;
    SwitchIdentity() identity;
    PortRoles() port_roles;
    Classifier() classifier;
    NshSteering() steering;
    Vnfs(flow_meter) vnfs;
    VnfAnswer(flow_meter) vnf_answer;
    VnfStats() vnf_stats;
    EmacRequest(emac_pending_request, emac_pending_meters, emac_pending_since, emac_pending_open) emac_request;
    EmacAnswer(emac_pending_request, emac_pending_meters, emac_pending_since, emac_pending_open) emac_answer;
    EmacAnswerDone() emac_answer_done;
    RecirculationIngress() recirculation;
    Forwarding() forwarding;
    Drop() drop;

    apply {
        if (meta.passes == 0) {
            meta.arrived = standard_metadata.ingress_global_timestamp;
        }
        packet_io_ingress.apply(hdr, standard_metadata);
        identity.apply(meta);
        meta.step = STEP_NONE;
        if (standard_metadata.parser_error != error.NoError) {
            drop_with(meta, DROP_PARSER);
        } else {
            port_roles.apply(hdr, meta, standard_metadata);
        }
        if (meta.dropped == 0) {
            if (hdr.emac_response.isValid()) {
                /* A function done in EM: apply the rule the EMAC found, then on to the next one. */
                emac_answer.apply(hdr, meta, standard_metadata);
                if (meta.step == STEP_EMAC_ANSWER) {
                    vnf_answer.apply(hdr, meta);
                    vnf_stats.apply(meta.instance);
                    emac_answer_done.apply(hdr);
                }
            } else if (!hdr.nsh.isValid() && hdr.ipv4.isValid() && meta.port_role == PORT_ROLE_HOST) {
                classifier.apply(hdr, meta);
            }
        }
        if (meta.dropped == 0 && hdr.nsh.isValid()) {
            steering.apply(hdr, meta, standard_metadata);
            if (meta.step == STEP_TO_SERVER) {
                vnf_stats.apply(meta.instance);
            } else if (meta.step == STEP_PROCESS_LM) {
                vnfs.apply(hdr, meta);
                vnf_stats.apply(meta.instance);
                recirculation.apply(hdr, meta, standard_metadata);
            } else if (meta.step == STEP_PROCESS_EM) {
                emac_request.apply(hdr, meta, standard_metadata);
            }
        }
        if (meta.dropped == 0 && !hdr.nsh.isValid() && hdr.ipv4.isValid()) {
            forwarding.apply(hdr, meta, standard_metadata);
        }
        drop.apply(meta, standard_metadata);
    }
}

control SremEgress(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t standard_metadata) {
    RecirculationEgress() recirculation;
    PacketIoEgress() packet_io_egress;

    apply {
        if (meta.recirculate == 1) {
            recirculation.apply();
        } else {
            packet_io_egress.apply(hdr, standard_metadata);
        }
    }
}

V1Switch(SremParser(), SremVerifyChecksum(), SremIngress(), SremEgress(), SremComputeChecksum(), SremDeparser()) main;
