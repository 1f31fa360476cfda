using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace EptFuzz.Targets.Vmx.Image;

/// <summary>The script interpreter: one handler per <see cref="ScriptOp"/>, the probe launch and the VM-exit stub.</summary>
internal sealed partial class HostKernel
{
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
                     (ScriptOp.Zero, opZero), (ScriptOp.Plant, opPlant), (ScriptOp.Unplant, opUnplant),
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
        // The stubs never push; RSP only has to be a canonical address near the code.
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
}
