using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace EptFuzz.Targets.Vmx.Image;

/// <summary>
/// The 64-bit host: reports the processor (CPUID, capability MSRs), enters VMX operation, sets up
/// one VMCS for a 64-bit guest with EPT and then executes the script (<see cref="ScriptOp"/>).
/// Every guest exit prints one line and returns to the script loop; the host keeps no state on
/// its stack between commands.
/// </summary>
/// <remarks>
/// Output lines (port 0xE9, hex numbers without prefix):
/// <c>HELLO eptfuzz-vmx 1</c>; <c>CPU leaf reg...</c>; <c>MSR number value</c>; then one of
/// <c>NOVMX</c>, <c>NOEPT</c>, <c>VMXLOCKED</c> (and exit 2) or <c>VMX ready</c>;
/// per probe <c>P step reason qualification gpa gla intinfo interr rbx rip</c> or <c>F step error</c>;
/// per dump <c>E step value</c>; the end marker <c>END</c>. Host failures print <c>HOSTFAULT</c> or
/// <c>VMFAIL</c> and no end marker.
/// </remarks>
internal sealed class HostKernel
{
    /// <summary>Exit codes written to the QEMU exit port.</summary>
    public const int ExitDone = 0;
    public const int ExitNoVmx = 2;
    public const int ExitHostFailure = 3;

    private readonly Assembler a = new(64);
    private Label hex;
    private Label exitWith;
    private Label vmwriteFailed;

    public static byte[] Build(out ulong[] exceptionStubs) => new HostKernel().Assemble(out exceptionStubs);

    private byte[] Assemble(out ulong[] exceptionStubs)
    {
        hex = a.CreateLabel();
        exitWith = a.CreateLabel();
        vmwriteFailed = a.CreateLabel();
        var loop = a.CreateLabel();
        var exitStub = a.CreateLabel();

        EmitStartup();
        EmitReport();
        EmitVmxOn();
        EmitVmcsSetup(exitStub);
        a.PrintLiteral("VMX ready\n");
        a.mov(rax, (ulong)KernelLayout.Script);
        a.mov(__qword_ptr[KernelVariables.ScriptPointer], rax);
        EmitScriptLoop(loop);
        EmitExitStub(exitStub, loop);
        EmitHelpers();
        var stubs = EmitExceptionStubs();

        byte[] code = a.ToBytes(KernelLayout.Code64, stubs, out exceptionStubs);
        if (code.Length > KernelLayout.Code64Size)
        {
            throw new InvalidOperationException($"64-bit kernel is {code.Length} bytes, its slot {KernelLayout.Code64Size}");
        }

        return code;
    }

    private void EmitStartup()
    {
        a.mov(ax, KernelLayout.DataSelector);
        a.mov(ds, ax);
        a.mov(es, ax);
        a.mov(ss, ax);
        a.mov(fs, ax);
        a.mov(gs, ax);
        a.mov(rsp, (ulong)KernelLayout.StackTop);
        a.lgdt(__[KernelLayout.GdtPointer]);
        a.mov(ax, KernelLayout.TssSelector);
        a.ltr(ax);
        a.lidt(__[KernelLayout.IdtPointer]);
        // Mask both PICs: the host runs with IF = 0, but a stray vector must never reach the IDT.
        a.mov(al, 0xFF);
        a.@out(0x21, al);
        a.@out(0xA1, al);
        a.PrintLiteral("HELLO eptfuzz-vmx 1\n");
    }

    private void EmitReport()
    {
        var hasVmx = a.CreateLabel();
        var hasSecondary = a.CreateLabel();
        var hasEpt = a.CreateLabel();
        var noTrue = a.CreateLabel();

        a.mov(eax, 1);
        a.xor(ecx, ecx);
        a.cpuid();
        a.mov(r12, rcx);
        a.mov(r13, rdx);
        a.PrintLiteral("CPU 1 ");
        PrintReg(r12);
        PrintReg(r13);
        a.PrintLiteral("\n");
        a.mov(eax, 0x80000001);
        a.cpuid();
        a.mov(r13, rcx);
        a.mov(r14, rdx);
        a.PrintLiteral("CPU 80000001 ");
        PrintReg(r13);
        PrintReg(r14);
        a.PrintLiteral("\n");
        a.mov(eax, 0x80000008);
        a.cpuid();
        a.mov(r13, rax);
        a.PrintLiteral("CPU 80000008 ");
        PrintReg(r13);
        a.PrintLiteral("\n");

        a.bt(r12d, 5); // CPUID.1:ECX.VMX
        a.jc(hasVmx);
        a.PrintLiteral("NOVMX\nEND\n");
        a.mov(eax, ExitNoVmx);
        a.jmp(exitWith);
        a.Label(ref hasVmx);

        foreach (uint msr in Msr.Reported)
        {
            PrintMsr(msr);
        }

        a.mov(ecx, Msr.VmxBasic);
        ReadMsrTo(rax);
        a.mov(__qword_ptr[KernelVariables.VmxBasic], rax);

        // Secondary controls exist only when the primary allowed-1 bit 31 is set, and the EPT
        // capability MSR only when EPT (secondary bit 1) may be 1; reading either otherwise is #GP.
        a.mov(ecx, Msr.VmxProcBasedControls);
        a.rdmsr();
        a.bt(edx, 31);
        a.jc(hasSecondary);
        a.PrintLiteral("NOEPT\nEND\n");
        a.mov(eax, ExitNoVmx);
        a.jmp(exitWith);
        a.Label(ref hasSecondary);
        PrintMsr(Msr.VmxProcBasedControls2);
        a.mov(ecx, Msr.VmxProcBasedControls2);
        a.rdmsr();
        a.bt(edx, 1);
        a.jc(hasEpt);
        a.PrintLiteral("NOEPT\nEND\n");
        a.mov(eax, ExitNoVmx);
        a.jmp(exitWith);
        a.Label(ref hasEpt);
        PrintMsr(Msr.VmxEptVpidCap);

        a.bt(__qword_ptr[KernelVariables.VmxBasic], 55);
        a.jnc(noTrue);
        PrintMsr(Msr.VmxTruePinBasedControls);
        PrintMsr(Msr.VmxTrueProcBasedControls);
        PrintMsr(Msr.VmxTrueExitControls);
        PrintMsr(Msr.VmxTrueEntryControls);
        a.Label(ref noTrue);
    }

    private void EmitVmxOn()
    {
        var unlocked = a.CreateLabel();
        var featureOk = a.CreateLabel();

        // IA32_FEATURE_CONTROL: firmware (SeaBIOS under QEMU) may have locked it; Bochs leaves it to us.
        a.mov(ecx, Msr.FeatureControl);
        a.rdmsr();
        a.test(eax, 1);
        a.jz(unlocked);
        a.test(eax, 4);
        a.jnz(featureOk);
        a.PrintLiteral("VMXLOCKED\nEND\n");
        a.mov(eax, ExitNoVmx);
        a.jmp(exitWith);
        a.Label(ref unlocked);
        a.mov(eax, 5); // lock | VMXON outside SMX
        a.xor(edx, edx);
        a.wrmsr();
        a.Label(ref featureOk);

        // CR0 and CR4 must respect the VMX fixed bits; CR4.VMXE must be 1 before VMXON.
        AdjustControlRegister(isCr4: false);
        AdjustControlRegister(isCr4: true);

        a.mov(eax, __dword_ptr[KernelVariables.VmxBasic]);
        a.and(eax, 0x7FFFFFFF);
        a.mov(__dword_ptr[KernelLayout.VmxonRegion], eax);
        a.mov(__dword_ptr[KernelLayout.Vmcs], eax);
        a.mov(rax, (ulong)KernelLayout.VmxonRegion);
        a.mov(__qword_ptr[KernelVariables.VmxonPointer], rax);
        a.mov(rax, (ulong)KernelLayout.Vmcs);
        a.mov(__qword_ptr[KernelVariables.VmcsPointer], rax);
        a.vmxon(__qword_ptr[KernelVariables.VmxonPointer]);
        FailIfVmxFailed("VMXON");
        a.vmclear(__qword_ptr[KernelVariables.VmcsPointer]);
        FailIfVmxFailed("VMCLEAR");
        a.vmptrld(__qword_ptr[KernelVariables.VmcsPointer]);
        FailIfVmxFailed("VMPTRLD");
    }

    private void AdjustControlRegister(bool isCr4)
    {
        a.mov(ecx, isCr4 ? Msr.VmxCr4Fixed0 : Msr.VmxCr0Fixed0);
        ReadMsrTo(r12);
        a.mov(ecx, isCr4 ? Msr.VmxCr4Fixed1 : Msr.VmxCr0Fixed1);
        ReadMsrTo(r13);
        if (isCr4)
        {
            a.mov(rax, cr4);
            a.or(rax, 0x2000); // VMXE
        }
        else
        {
            a.mov(rax, cr0);
        }

        a.or(rax, r12);
        a.and(rax, r13);
        if (isCr4)
        {
            a.mov(cr4, rax);
        }
        else
        {
            a.mov(cr0, rax);
        }
    }

    private void EmitVmcsSetup(Label exitStub)
    {
        // Controls: wanted bits adjusted to the allowed-0/allowed-1 settings (TRUE MSRs when BASIC[55]).
        AdjustControl(Msr.VmxPinBasedControls, Msr.VmxTruePinBasedControls, 0);
        VmwriteReg(VmcsField.PinBasedControls, rax);
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

    private void EmitScriptLoop(Label loop)
    {
        var opEnd = a.CreateLabel();
        var opWrite = a.CreateLabel();
        var opEptp = a.CreateLabel();
        var opInvept = a.CreateLabel();
        var opProbe = a.CreateLabel();
        var opDump = a.CreateLabel();
        var opFill = a.CreateLabel();
        var opGuestPaging = a.CreateLabel();
        var opCopy = a.CreateLabel();
        var opZero = a.CreateLabel();
        var opPlant = a.CreateLabel();
        var opUnplant = a.CreateLabel();

        a.Label(ref loop);
        a.mov(rbx, __qword_ptr[KernelVariables.ScriptPointer]);
        a.mov(r12, __qword_ptr[rbx]);
        a.mov(r13, __qword_ptr[rbx + 8]);
        a.mov(r14, __qword_ptr[rbx + 16]);
        a.mov(r15, __qword_ptr[rbx + 24]);
        a.add(rbx, 32);
        a.mov(__qword_ptr[KernelVariables.ScriptPointer], rbx);
        a.movzx(eax, r12b);
        foreach (var (op, label) in new[]
                 {
                     (ScriptOp.End, opEnd), (ScriptOp.Write, opWrite), (ScriptOp.SetEptp, opEptp), (ScriptOp.Invept, opInvept),
                     (ScriptOp.Probe, opProbe), (ScriptOp.Dump, opDump), (ScriptOp.Fill, opFill), (ScriptOp.GuestPaging, opGuestPaging),
                     (ScriptOp.Copy, opCopy), (ScriptOp.Zero, opZero), (ScriptOp.Plant, opPlant), (ScriptOp.Unplant, opUnplant),
                 })
        {
            a.cmp(eax, (int)op);
            a.je(label);
        }

        a.PrintLiteral("HOSTFAULT bad script op\n");
        a.mov(eax, ExitHostFailure);
        a.jmp(exitWith);

        a.Label(ref opWrite);
        a.mov(__qword_ptr[r13], r14);
        a.jmp(loop);

        a.Label(ref opCopy);
        a.mov(rax, __qword_ptr[r14]);
        a.mov(__qword_ptr[r13], rax);
        a.jmp(loop);

        a.Label(ref opEptp);
        VmwriteReg(VmcsField.EptPointer, r13);
        a.mov(__qword_ptr[KernelVariables.InveptDescriptor], r13);
        a.jmp(loop);

        a.Label(ref opInvept);
        a.mov(eax, 2); // all-context: valid whatever the current EPTP holds
        a.invept(rax, __[KernelVariables.InveptDescriptor]);
        FailIfVmxFailed("INVEPT");
        a.jmp(loop);

        a.Label(ref opDump);
        a.PrintLiteral("E ");
        PrintReg(r13);
        a.mov(rax, __qword_ptr[r14]);
        a.call(hex);
        a.PrintLiteral("\n");
        a.jmp(loop);

        var fillLoop = a.CreateLabel();
        a.Label(ref opFill);
        a.mov(rax, r12);
        a.shr(rax, 8);
        a.and(eax, 0xF);
        a.shl(rax, 52);
        a.or(rax, r14);
        a.mov(rdx, Tag.Marker);
        a.or(rax, rdx);
        a.mov(rdi, r13);
        a.mov(rcx, r15);
        a.shl(rcx, 9);
        a.test(rcx, rcx);
        a.jz(loop);
        a.Label(ref fillLoop);
        a.mov(__qword_ptr[rdi], rax);
        a.add(rdi, 8);
        a.add(rax, 8);
        a.dec(rcx);
        a.jnz(fillLoop);
        a.jmp(loop);

        var wpOff = a.CreateLabel();
        a.Label(ref opGuestPaging);
        VmwriteReg(VmcsField.GuestCr3, r13);
        a.mov(rax, cr4);
        a.or(rax, r14);
        VmwriteReg(VmcsField.GuestCr4, rax);
        VmwriteReg(VmcsField.GuestEfer, r15);
        a.mov(rax, cr0);
        a.bt(r12, 8); // flags bit 0: CR0.WP
        a.jnc(wpOff);
        a.or(eax, 1 << 16);
        a.Label(ref wpOff);
        VmwriteReg(VmcsField.GuestCr0, rax);
        a.jmp(loop);

        EmitProbe(opProbe, loop);
        EmitPlanting(opZero, opPlant, opUnplant, loop);

        a.Label(ref opEnd);
        a.PrintLiteral("END\n");
        a.mov(eax, ExitDone);
        a.jmp(exitWith);
    }

    private void EmitProbe(Label opProbe, Label loop)
    {
        var cpl0 = a.CreateLabel();
        var segmentsSet = a.CreateLabel();
        var resume = a.CreateLabel();
        var entryFailed = a.CreateLabel();
        var invalidPointer = a.CreateLabel();

        a.Label(ref opProbe);
        a.mov(__qword_ptr[KernelVariables.Step], r13);
        VmwriteReg(VmcsField.GuestRip, r14);
        // The stack page follows the code page in the window.
        a.mov(rax, r14);
        a.and(rax, -0x1000);
        a.add(rax, 0x2000);
        VmwriteReg(VmcsField.GuestRsp, rax);
        Vmwrite(VmcsField.GuestRflags, 2);
        a.bt(r12, 8); // flags bit 0: CPL 3
        a.jnc(cpl0);
        SetGuestSegments(cpl3: true);
        a.jmp(segmentsSet);
        a.Label(ref cpl0);
        SetGuestSegments(cpl3: false);
        a.Label(ref segmentsSet);
        a.xor(ebx, ebx);
        a.mov(rax, r15);
        a.cmp(__qword_ptr[KernelVariables.Launched], 0);
        a.jne(resume);
        a.vmlaunch();
        a.jmp(entryFailed);
        a.Label(ref resume);
        a.vmresume();
        a.Label(ref entryFailed);
        a.jc(invalidPointer);
        a.PrintLiteral("F ");
        a.mov(rax, __qword_ptr[KernelVariables.Step]);
        a.call(hex);
        a.mov(edi, VmcsField.InstructionError);
        a.vmread(rax, rdi);
        a.call(hex);
        a.PrintLiteral("\n");
        a.jmp(loop);
        a.Label(ref invalidPointer);
        a.PrintLiteral("VMFAIL VMLAUNCH invalid VMCS pointer\n");
        a.mov(eax, ExitHostFailure);
        a.jmp(exitWith);
    }

    private void EmitPlanting(Label opZero, Label opPlant, Label opUnplant, Label loop)
    {
        a.Label(ref opZero);
        a.mov(rdi, r13);
        a.mov(rcx, r15);
        a.shl(rcx, 9);
        a.xor(eax, eax);
        a.rep.stosq();
        a.jmp(loop);

        // Plant: save the 8 bytes at the offset of each page to [b + 8 * i], then write the code.
        var plantLoop = a.CreateLabel();
        a.Label(ref opPlant);
        a.mov(rdi, r13);
        a.and(rdi, -0x1000);
        a.mov(r9, r13);
        a.and(r9, 0xFFF);
        a.mov(rsi, r14);
        a.mov(ecx, r15d);
        a.mov(rdx, r15);
        a.shr(rdx, 32);
        a.shl(rdx, 8);
        a.mov(rax, GuestCode.PlantedFetchTemplate);
        a.or(rdx, rax);
        a.test(ecx, ecx);
        a.jz(loop);
        a.Label(ref plantLoop);
        a.mov(rax, __qword_ptr[rdi + r9]);
        a.mov(__qword_ptr[rsi], rax);
        a.mov(__qword_ptr[rdi + r9], rdx);
        a.add(rdi, 0x1000);
        a.add(rsi, 8);
        a.add(rdx, 0x100);
        a.dec(ecx);
        a.jnz(plantLoop);
        a.jmp(loop);

        // Unplant: put the saved bytes back.
        var unplantLoop = a.CreateLabel();
        a.Label(ref opUnplant);
        a.mov(rdi, r13);
        a.and(rdi, -0x1000);
        a.mov(r9, r13);
        a.and(r9, 0xFFF);
        a.mov(rsi, r14);
        a.mov(ecx, r15d);
        a.test(ecx, ecx);
        a.jz(loop);
        a.Label(ref unplantLoop);
        a.mov(rax, __qword_ptr[rsi]);
        a.mov(__qword_ptr[rdi + r9], rax);
        a.add(rdi, 0x1000);
        a.add(rsi, 8);
        a.dec(ecx);
        a.jnz(unplantLoop);
        a.jmp(loop);
    }

    private void EmitExitStub(Label exitStub, Label loop)
    {
        var entryOk = a.CreateLabel();

        a.Label(ref exitStub);
        a.mov(__qword_ptr[KernelVariables.GuestRbx], rbx);
        a.mov(rsp, (ulong)KernelLayout.StackTop);
        a.PrintLiteral("P ");
        a.mov(rax, __qword_ptr[KernelVariables.Step]);
        a.call(hex);
        a.mov(edi, VmcsField.ExitReason);
        a.vmread(r12, rdi);
        PrintReg(r12);
        foreach (uint field in new[] { VmcsField.ExitQualification, VmcsField.GuestPhysicalAddress, VmcsField.GuestLinearAddress, VmcsField.ExitInterruptionInfo, VmcsField.ExitInterruptionErrorCode })
        {
            a.mov(edi, field);
            a.vmread(rax, rdi);
            a.call(hex);
        }

        a.mov(rax, __qword_ptr[KernelVariables.GuestRbx]);
        a.call(hex);
        a.mov(edi, VmcsField.GuestRip);
        a.vmread(rax, rdi);
        a.call(hex);
        a.PrintLiteral("\n");

        // A VM exit with bit 31 set is a failed entry (invalid guest state): the VMCS is not launched.
        a.bt(r12d, 31);
        a.jnc(entryOk);
        a.mov(__qword_ptr[KernelVariables.Launched], 0);
        a.vmclear(__qword_ptr[KernelVariables.VmcsPointer]);
        FailIfVmxFailed("VMCLEAR");
        a.vmptrld(__qword_ptr[KernelVariables.VmcsPointer]);
        FailIfVmxFailed("VMPTRLD");
        a.jmp(loop);
        a.Label(ref entryOk);
        a.mov(__qword_ptr[KernelVariables.Launched], 1);
        a.jmp(loop);
    }

    private void EmitHelpers()
    {
        // hex: print RAX as 16 hex digits and a space. Clobbers RAX, RCX, RDX, R8.
        var digitLoop = a.CreateLabel();
        var isDigit = a.CreateLabel();
        a.Label(ref hex);
        a.mov(r8, rax);
        a.mov(ecx, 16);
        a.mov(dx, DebugPort.Console);
        a.Label(ref digitLoop);
        a.rol(r8, 4);
        a.mov(eax, r8d);
        a.and(eax, 0xF);
        a.cmp(al, 10);
        a.jb(isDigit);
        a.add(al, 'a' - '0' - 10);
        a.Label(ref isDigit);
        a.add(al, (byte)'0');
        a.@out(dx, al);
        a.dec(ecx);
        a.jnz(digitLoop);
        a.mov(al, (byte)' ');
        a.@out(dx, al);
        a.ret();

        a.Label(ref vmwriteFailed);
        a.PrintLiteral("VMFAIL VMWRITE ");
        a.mov(rax, rdi);
        a.call(hex);
        a.mov(edi, VmcsField.InstructionError);
        a.vmread(rax, rdi);
        a.call(hex);
        a.PrintLiteral("\n");
        a.mov(eax, ExitHostFailure);

        // exitWith: EAX = code. QEMU's isa-debug-exit ends the process here; Bochs ignores the
        // port and stops at its shutdown port instead.
        var halt = a.CreateLabel();
        a.Label(ref exitWith);
        a.mov(dx, DebugPort.QemuExit);
        a.@out(dx, eax);
        a.mov(dx, DebugPort.BochsShutdown);
        foreach (char c in "Shutdown")
        {
            a.mov(al, (byte)c);
            a.@out(dx, al);
        }

        a.Label(ref halt);
        a.cli();
        a.hlt();
        a.jmp(halt);
    }

    private List<Label> EmitExceptionStubs()
    {
        var common = a.CreateLabel();
        var stubs = new List<Label>();
        for (int v = 0; v < KernelLayout.IdtVectors; v++)
        {
            var stub = a.CreateLabel();
            a.Label(ref stub);
            a.push(v);
            a.jmp(common);
            stubs.Add(stub);
        }

        // Stack: vector, then (error code,) RIP, CS, RFLAGS: print the vector and the next three qwords.
        a.Label(ref common);
        a.PrintLiteral("HOSTFAULT ");
        a.pop(r12);
        PrintReg(r12);
        a.mov(r12, rsp);
        for (int i = 0; i < 3; i++)
        {
            a.mov(rax, __qword_ptr[r12 + i * 8]);
            a.call(hex);
        }

        a.PrintLiteral("\n");
        a.mov(eax, ExitHostFailure);
        a.jmp(exitWith);
        return stubs;
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

    private void PrintMsr(uint msr)
    {
        a.PrintLiteral($"MSR {msr:x} ");
        a.mov(ecx, msr);
        ReadMsrTo(rax);
        a.call(hex);
        a.PrintLiteral("\n");
    }

    private void ReadMsrTo(AssemblerRegister64 target)
    {
        a.rdmsr();
        a.shl(rdx, 32);
        a.mov(eax, eax);
        a.or(rax, rdx);
        if (target != rax)
        {
            a.mov(target, rax);
        }
    }

    private void PrintReg(AssemblerRegister64 register)
    {
        a.mov(rax, register);
        a.call(hex);
    }

    private void Vmwrite(uint field, ulong value)
    {
        a.mov(rsi, value);
        VmwriteReg(field, rsi);
    }

    private void VmwriteReg(uint field, AssemblerRegister64 value)
    {
        a.mov(edi, field);
        a.vmwrite(rdi, value);
        a.jbe(vmwriteFailed);
    }

    private void FailIfVmxFailed(string what)
    {
        var ok = a.CreateLabel();
        a.ja(ok); // CF = 0 and ZF = 0: VMsucceed
        a.PrintLiteral($"VMFAIL {what}\n");
        a.mov(eax, ExitHostFailure);
        a.jmp(exitWith);
        a.Label(ref ok);
    }
}
