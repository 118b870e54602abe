/** 802.1X port authentication on a switch: the port controller and what it is made of. */
export { PortController, hostapdConfig, type PortControllerOptions } from './port-controller.ts';
export { radiusConfig, radiusDictionary, VNET_ATTRIBUTE } from './freeradius.ts';
export { nextPortState, parseDecision, parseHostapdEvent, type PortState } from './events.ts';
