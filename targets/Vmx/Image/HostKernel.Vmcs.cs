using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace EptFuzz.Targets.Vmx.Image;

/// <summary>The VMCS of the oracle's guest: controls adjusted to the capability MSRs, host state, a flat 64-bit guest.</summary>
internal sealed partial class HostKernel
{
    /// <summary>Preemption-timer value per VM entry (TSC ticks scaled by IA32_VMX_MISC[4:0]); a probe needs a handful of instructions.</summary>
    public const uint GuestTimerTicks = 1 << 24;

    private void EmitVmcsSetup(Label exitStub)
    {
        // Controls: wanted bits adjusted to the allowed-0/allowed-1 settings (TRUE MSRs when BASIC[55]).
        // The VMX-preemption timer is the guest's watchdog: a probe that runs away (a fetch that
        // executes something unexpected) exits with reason 52 instead of hanging the boot. Where
        // the processor lacks the timer, the adjustment drops the bit and the host watchdog remains.
        var noTimer = a.CreateLabel();
        AdjustControl(Msr.VmxPinBasedControls, Msr.VmxTruePinBasedControls, 1u << 6);
        VmwriteReg(VmcsField.PinBasedControls, rax);
        a.bt(eax, 6);
        a.jnc(noTimer);
        Vmwrite(VmcsField.PreemptionTimerValue, GuestTimerTicks);
        a.Label(ref noTimer);
        AdjustControl(Msr.VmxProcBasedControls, Msr.VmxTrueProcBasedControls, (1u << 31) | (1u << 7)); // secondary controls, HLT exiting
        VmwriteReg(VmcsField.ProcBasedControls, rax);
        AdjustControl(Msr.VmxProcBasedControls2, null, 1u << 1); // enable EPT
        VmwriteReg(VmcsField.SecondaryControls, rax);
        AdjustControl(Msr.VmxExitControls, Msr.VmxTrueExitControls, (1u << 9) | (1u << 20) | (1u << 21)); // host 64-bit, save/load EFER
        VmwriteReg(VmcsField.ExitControls, rax);
        AdjustControl(Msr.VmxEntryControls, Msr.VmxTrueEntryControls, (1u << 9) | (1u << 15)); // IA-32e guest, load EFER
        VmwriteReg(VmcsField.EntryControls, rax);

        // Every guest exception exits (reason 0), so the guest needs no IDT and a #PF is reported with its error code.
        Vmwrite(VmcsField.ExceptionBitmap, 0xFFFFFFFF);
        foreach (uint field in new[]
                 {
                     VmcsField.PageFaultErrorCodeMask, VmcsField.PageFaultErrorCodeMatch, VmcsField.Cr3TargetCount,
                     VmcsField.ExitMsrStoreCount, VmcsField.ExitMsrLoadCount, VmcsField.EntryMsrLoadCount,
                     VmcsField.EntryInterruptionInfo, VmcsField.Cr0GuestHostMask, VmcsField.Cr4GuestHostMask,
                     VmcsField.Cr0ReadShadow, VmcsField.Cr4ReadShadow,
                 })
        {
            Vmwrite(field, 0);
        }

        // Host state: the current control registers, flat selectors, our TSS/GDT/IDT.
        a.mov(rax, cr0);
        VmwriteReg(VmcsField.HostCr0, rax);
        a.mov(rax, cr3);
        VmwriteReg(VmcsField.HostCr3, rax);
        a.mov(rax, cr4);
        VmwriteReg(VmcsField.HostCr4, rax);
        Vmwrite(VmcsField.HostCsSelector, KernelLayout.Code64Selector);
        foreach (uint field in new[] { VmcsField.HostSsSelector, VmcsField.HostDsSelector, VmcsField.HostEsSelector, VmcsField.HostFsSelector, VmcsField.HostGsSelector })
        {
            Vmwrite(field, KernelLayout.DataSelector);
        }

        Vmwrite(VmcsField.HostTrSelector, KernelLayout.TssSelector);
        Vmwrite(VmcsField.HostFsBase, 0);
        Vmwrite(VmcsField.HostGsBase, 0);
        Vmwrite(VmcsField.HostTrBase, KernelLayout.Tss);
        Vmwrite(VmcsField.HostGdtrBase, KernelLayout.Gdt);
        Vmwrite(VmcsField.HostIdtrBase, KernelLayout.Idt);
        Vmwrite(VmcsField.HostSysenterCs, 0);
        Vmwrite(VmcsField.HostSysenterEsp, 0);
        Vmwrite(VmcsField.HostSysenterEip, 0);
        a.mov(ecx, Msr.Efer);
        ReadMsrTo(rax);
        VmwriteReg(VmcsField.HostEfer, rax);
        Vmwrite(VmcsField.HostRsp, KernelLayout.StackTop);
        a.lea(rax, __[exitStub]);
        VmwriteReg(VmcsField.HostRip, rax);

        // Guest state: a flat 64-bit guest. CR3, CR4 extras and EFER come from the script (GuestPaging).
        a.mov(rax, cr0);
        VmwriteReg(VmcsField.GuestCr0, rax);
        a.mov(rax, cr4);
        VmwriteReg(VmcsField.GuestCr4, rax);
        Vmwrite(VmcsField.GuestEfer, 0x500); // LME | LMA
        SetGuestSegments(cpl3: false);
        foreach (var (selector, limit, rights, baseField, sel) in new[]
                 {
                     (VmcsField.GuestEsSelector, VmcsField.GuestEsLimit, VmcsField.GuestEsAccessRights, VmcsField.GuestEsBase, (ulong)KernelLayout.DataSelector),
                     (VmcsField.GuestDsSelector, VmcsField.GuestDsLimit, VmcsField.GuestDsAccessRights, VmcsField.GuestDsBase, (ulong)KernelLayout.DataSelector),
                     (VmcsField.GuestFsSelector, VmcsField.GuestFsLimit, VmcsField.GuestFsAccessRights, VmcsField.GuestFsBase, (ulong)KernelLayout.DataSelector),
                     (VmcsField.GuestGsSelector, VmcsField.GuestGsLimit, VmcsField.GuestGsAccessRights, VmcsField.GuestGsBase, (ulong)KernelLayout.DataSelector),
                 })
        {
            Vmwrite(selector, sel);
            Vmwrite(limit, 0xFFFFFFFF);
            Vmwrite(rights, 0xC093);
            Vmwrite(baseField, 0);
        }

        Vmwrite(VmcsField.GuestCsBase, 0);
        Vmwrite(VmcsField.GuestCsLimit, 0xFFFFFFFF);
        Vmwrite(VmcsField.GuestSsBase, 0);
        Vmwrite(VmcsField.GuestSsLimit, 0xFFFFFFFF);
        Vmwrite(VmcsField.GuestLdtrSelector, 0);
        Vmwrite(VmcsField.GuestLdtrLimit, 0);
        Vmwrite(VmcsField.GuestLdtrAccessRights, 0x10000); // unusable
        Vmwrite(VmcsField.GuestLdtrBase, 0);
        Vmwrite(VmcsField.GuestTrSelector, KernelLayout.TssSelector);
        Vmwrite(VmcsField.GuestTrLimit, 0x67);
        Vmwrite(VmcsField.GuestTrAccessRights, 0x8B); // busy 64-bit TSS, present
        Vmwrite(VmcsField.GuestTrBase, 0);
        Vmwrite(VmcsField.GuestGdtrBase, 0);
        Vmwrite(VmcsField.GuestGdtrLimit, 0);
        Vmwrite(VmcsField.GuestIdtrBase, 0);
        Vmwrite(VmcsField.GuestIdtrLimit, 0);
        Vmwrite(VmcsField.GuestDr7, 0x400);
        Vmwrite(VmcsField.GuestRflags, 2);
        Vmwrite(VmcsField.VmcsLinkPointer, ulong.MaxValue);
        Vmwrite(VmcsField.GuestDebugCtl, 0);
        Vmwrite(VmcsField.GuestActivityState, 0);
        Vmwrite(VmcsField.GuestInterruptibility, 0);
        Vmwrite(VmcsField.GuestPendingDebugExceptions, 0);
        Vmwrite(VmcsField.GuestSysenterCs, 0);
        Vmwrite(VmcsField.GuestSysenterEsp, 0);
        Vmwrite(VmcsField.GuestSysenterEip, 0);
    }

    /// <summary>CPL is SS.DPL in VMX; CS and SS change together, the data segments stay flat DPL 0 (RPL 0 passes their checks).</summary>
    private void SetGuestSegments(bool cpl3)
    {
        Vmwrite(VmcsField.GuestCsSelector, cpl3 ? 0x1BUL : KernelLayout.Code64Selector);
        Vmwrite(VmcsField.GuestCsAccessRights, cpl3 ? 0xA0FBUL : 0xA09B);
        Vmwrite(VmcsField.GuestSsSelector, cpl3 ? 0x23UL : KernelLayout.DataSelector);
        Vmwrite(VmcsField.GuestSsAccessRights, cpl3 ? 0xC0F3UL : 0xC093);
    }

    private void AdjustControl(uint msr, uint? trueMsr, uint wanted)
    {
        var chosen = a.CreateLabel();
        a.mov(ecx, msr);
        if (trueMsr is uint t)
        {
            a.bt(__qword_ptr[KernelVariables.VmxBasic], 55);
            a.jnc(chosen);
            a.mov(ecx, t);
        }

        a.Label(ref chosen);
        a.rdmsr();
        a.or(eax, unchecked((int)wanted));
        a.and(eax, edx);
        a.mov(eax, eax);
    }
}
