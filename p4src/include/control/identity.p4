/* Which switch this is: the controller writes it as switch_identity's default action, so the same
 * program runs on every switch and EMAC requests can say where they came from.
 */
#ifndef SREM_IDENTITY_P4
#define SREM_IDENTITY_P4

#include "../define.p4"
#include "../size.p4"
#include "../header.p4"

control SwitchIdentity(inout metadata_t meta) {
    @name(".SremIngress.set_switch_id")
    action set_switch_id(bit<16> switch_id) {
        meta.switch_id = switch_id;
    }

    /* Not const: the default action is the one thing the controller writes here. */
    @name(".SremIngress.switch_identity")
    table switch_identity {
        actions = { set_switch_id; }
        default_action = set_switch_id(0);
        size = SWITCH_IDENTITY_SIZE;
    }

    apply {
        switch_identity.apply();
    }
}

#endif
