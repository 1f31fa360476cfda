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
internal sealed partial class HostKernel
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
