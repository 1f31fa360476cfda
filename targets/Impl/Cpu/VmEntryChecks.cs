using EptFuzz.Contract;

namespace EptFuzz.Impl.Cpu;

/// <summary>The VM-entry checks on the EPTP and the EPT-related controls (EPTP-CHK-1..5, EPT-MBEC-1).</summary>
public static class VmEntryChecks
{
    public static bool Passes(ulong eptp, VmxControls controls, CpuCapabilities cpu)
    {
        // [2:0] paging-structure memory type: UC (CAP[8]) or WB (CAP[14]).
        bool memoryType = (eptp & 7) switch
        {
            0 => cpu.EptpUc,
            6 => cpu.EptpWb,
            _ => false,
        };
        // [5:3] walk length - 1: 3, or 4 with CAP[7].
        ulong walk = (eptp >> 3) & 7;
        bool walkLength = walk == 3 || (walk == 4 && cpu.Walk5);
        // [6] A/D enable needs CAP[21].
        bool accessedDirty = (eptp & (1UL << 6)) == 0 || cpu.AccessedDirty;
        // [11:7] reserved (bit 7, supervisor shadow stack, is not offered by this processor model).
        bool reserved = (eptp & 0xF80UL) == 0;
        // [63:N] reserved.
        bool address = (eptp >> cpu.MaxPhyAddr) == 0;
        bool mbec = !controls.Mbec || cpu.Mbec;
        return memoryType && walkLength && accessedDirty && reserved && address && mbec;
    }
}
