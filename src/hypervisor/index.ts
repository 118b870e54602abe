export { QmpClient, QmpError, type QmpEvent } from './qmp.ts';
export {
  balloon,
  blockdevAdd,
  blockdevDel,
  deviceAdd,
  deviceDel,
  qmpCapabilities,
  qomGetGuestStats,
  qomList,
  qomSet,
  queryBalloon,
  quit,
  systemPowerdown,
  type BlockdevNbdOptions,
  type DeviceOptions,
  type GuestMemoryStats,
  type QmpExecutor,
  type QomProperty,
} from './qmp-commands.ts';
export { QemuDriver, QemuLaunchError, type StopMethod, type VmBootState } from './qemu-driver.ts';
export {
  buildQemuArgs,
  blockdevOptions,
  cpuModelFor,
  diskDevice,
  diskDeviceOptions,
  diskNode,
  macFor,
  ROOT_PORTS,
  type Accel,
  type PortForward,
  type VmDisk,
  type VmNetNic,
  type VmPaths,
  type VmSpec,
} from './qemu-command.ts';
export { probeKvm, type KvmProbeResult } from './kvm-probe.ts';
export { buildTestGuest, findGuestKernel, type GuestImageManifest } from './guest-image/test-guest.ts';
export { buildTestDisk } from './guest-image/test-disk.ts';
export { isLiveProcessWith, findProcessesWith } from './process.ts';
