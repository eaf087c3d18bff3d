package driver

import "github.com/lucid-project/lucid/sdk/driver/driverpb"

// The one mapping between PowerState and its wire enum. A state the other
// side does not know (a newer peer) becomes "nostate" rather than an error:
// the reconciler treats it as "power unknown".

func powerToPB(p PowerState) driverpb.PowerState {
	switch p {
	case PowerRunning:
		return driverpb.PowerState_POWER_STATE_RUNNING
	case PowerShutdown:
		return driverpb.PowerState_POWER_STATE_SHUTDOWN
	case PowerCrashed:
		return driverpb.PowerState_POWER_STATE_CRASHED
	case PowerPaused:
		return driverpb.PowerState_POWER_STATE_PAUSED
	default:
		return driverpb.PowerState_POWER_STATE_NOSTATE
	}
}

func powerFromPB(p driverpb.PowerState) PowerState {
	switch p {
	case driverpb.PowerState_POWER_STATE_RUNNING:
		return PowerRunning
	case driverpb.PowerState_POWER_STATE_SHUTDOWN:
		return PowerShutdown
	case driverpb.PowerState_POWER_STATE_CRASHED:
		return PowerCrashed
	case driverpb.PowerState_POWER_STATE_PAUSED:
		return PowerPaused
	default:
		return PowerNoState
	}
}

func instanceToPB(in Instance) *driverpb.Instance {
	return &driverpb.Instance{Id: in.ID, Power: powerToPB(in.Power)}
}

func instanceFromPB(in *driverpb.Instance) Instance {
	return Instance{ID: in.GetId(), Power: powerFromPB(in.GetPower())}
}
