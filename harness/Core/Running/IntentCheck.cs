using EptFuzz.Contract;
using EptFuzz.Harness.Intent;

namespace EptFuzz.Harness.Running;

/// <summary>
/// What an access to a guest-physical address should observe, from the intent model alone: a
/// mapped page translates to the intended address, size and type when its permissions allow the
/// access; otherwise an EPT violation whose permission bits are the page's (non-leaf entries that
/// operations create grant everything, so the leaf decides), or zero when nothing is mapped.
/// </summary>
public static class IntentCheck
{
    /// <summary>Null when the observation agrees with the intent (or the intent cannot say), else the field that differs.</summary>
    public static (string Field, string Expected)? Check(IntentModel intent, Access access, bool pagingOn, Observation o, VmxControls controls)
    {
        // Only the access to the final guest-physical address has an intent.
        ulong gpa;
        if (!access.Linear || !pagingOn)
        {
            gpa = access.Address;
        }
        else if (o.Kind == OutcomeKind.Translated || (o.Kind == OutcomeKind.EptViolation && (o.Qualification & 0x100) != 0))
        {
            gpa = o.Gpa.Value;
        }
        else
        {
            return null;
        }

        if (!intent.IsKnown(gpa) || o.Kind is OutcomeKind.Unsupported or OutcomeKind.NoVmEntry or OutcomeKind.GuestPageFault)
        {
            return null;
        }

        ulong accessBits = access.Kind switch
        {
            AccessKind.Read => 1UL,
            AccessKind.Write => 2UL,
            _ => 4UL,
        };
        var page = intent.Lookup(gpa);
        var p = page?.Permissions ?? EptPermissions.None;
        bool present = (p & (EptPermissions.ReadAccess | EptPermissions.WriteAccess | EptPermissions.ExecuteAccess)) != 0
            || (controls.Mbec && p.HasFlag(EptPermissions.UserModeExecute));
        if (page is not { } mapped || !present)
        {
            // EPT-VIOL-1: a not-present entry stops the walk; bits 5:3 (and 6) are 0.
            return o.Kind == OutcomeKind.EptViolation && (o.Qualification & 0x7f) == accessBits
                ? null
                : ("kind", $"violation qual bits[6:0]=0x{accessBits:x} (nothing mapped at 0x{gpa:x})");
        }

        // A user-mode linear address (paging off) fetches with XU under MBEC; through guest paging
        // the intent does not know the guest's U/S bits, so it does not judge such fetches.
        bool userMode = !access.Linear || !pagingOn;
        if (access.Kind == AccessKind.Fetch && controls.Mbec && !userMode)
        {
            return null;
        }

        bool allowed = access.Kind switch
        {
            AccessKind.Read => p.HasFlag(EptPermissions.ReadAccess),
            AccessKind.Write => p.HasFlag(EptPermissions.WriteAccess),
            _ => controls.Mbec && userMode ? p.HasFlag(EptPermissions.UserModeExecute) : p.HasFlag(EptPermissions.ExecuteAccess),
        };
        if (!allowed)
        {
            ulong perm = (p.HasFlag(EptPermissions.ReadAccess) ? 1UL : 0) | (p.HasFlag(EptPermissions.WriteAccess) ? 2UL : 0) | (p.HasFlag(EptPermissions.ExecuteAccess) ? 4UL : 0);
            ulong expected = accessBits | (perm << 3) | (controls.Mbec && p.HasFlag(EptPermissions.UserModeExecute) ? 0x40UL : 0);
            return o.Kind == OutcomeKind.EptViolation && (o.Qualification & 0x7f) == expected
                ? null
                : ("kind", $"violation qual bits[6:0]=0x{expected:x} (page 0x{mapped.Gpa.Value:x} perm={Describe.Permissions(p)})");
        }

        ulong hpa = mapped.Hpa.Value + (gpa - mapped.Gpa.Value);
        if (o.Kind != OutcomeKind.Translated)
        {
            return ("kind", $"ok hpa=0x{hpa:x} size={mapped.Size.Text()}");
        }

        if (o.Hpa.Value != hpa)
        {
            return ("hpa", $"hpa=0x{hpa:x}");
        }

        if (o.PageSize != mapped.Size)
        {
            return ("size", $"size={mapped.Size.Text()}");
        }

        // With paging off the PAT type is WB, and Table 11-7 with PAT WB gives the EPT type itself.
        if ((mapped.IgnorePat || !access.Linear || !pagingOn) && o.MemoryType != mapped.MemoryType)
        {
            return ("mt", $"mt={mapped.MemoryType.Text()}");
        }

        return null;
    }
}
